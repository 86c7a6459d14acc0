#!/usr/bin/env bash
# One device call for the fused glyph readout (issue 13): the shipped weights travel as .cw/w.tar.xz
# (`bash scripts/gpu/pack_weights.sh`, the weights moved out of the tree), pytest as .wheels, carry [".cw", ".wheels"]:
#   bash scripts/gpu/readout_lease.sh [pages]
# GPU tests; the GPU read paths against the reference on doc pages (scripts/gpu/same_texts.py); the readout alone at 128 base
# pages; benchmarks/read_speed.py at batch 128.
set -u
PAGES=${1:-512}
mkdir -p /tmp/w && xz -T0 -dc .cw/w.tar.xz | tar -x -C /tmp/w && rm -rf ocr_model/weights/optimem-small \
  && cp -r /tmp/w/optimem-small ocr_model/weights/ || exit 1
pip install -q --no-index --no-deps .wheels/*.whl 2>&1 | tail -1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/ocr_model/test_glyph_readout.py tests/optimem/test_reader.py \
  -k "gpu or overlapped or block_topk or fused or reference" 2>&1 | tail -4
timeout 300 python3 scripts/gpu/same_texts.py 300 2>&1 | grep -v Warn
timeout 200 python3 scripts/gpu/readout_bench.py 2>&1 | grep -v Warn
python3 benchmarks/read_speed.py --device cuda --pages "$PAGES" --batch 128 --repeats 2 --json "$OUT/rs128.json" 2>&1 | grep -v '^ \|^{\|^}'
