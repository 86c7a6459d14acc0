#!/usr/bin/env bash
# Device calls for issue 13's read speed (sessions 12-13: the queued read path, copy_pixels, CUDA graphs;
# docs/benchmarks.md "Read path on one H200"). The shipped weights travel as .cw/w.tar.xz
# (`bash scripts/gpu/pack_weights.sh`, the weights moved out of the tree), pytest as .wheels; carry [".cw", ".wheels"]:
#   bash scripts/gpu/speed_lease.sh check [pages]   encoder variants (+ compile), GPU tests, and the GPU default
#                                                   (bf16, fused, folded, device views) against the reference
#                                                   (fp32, reference readout, table bias, Pillow views) on doc pages
#   [BATCH=128 TIERS=base,small,tiny OWN=1 TESTS=0] bash scripts/gpu/speed_lease.sh speed [pages]
#                                                   benchmarks/read_speed.py (OWN=1: own-view readers only;
#                                                   TESTS=0: without the GPU tests first)
#   bash scripts/gpu/speed_lease.sh profile         where a read waits for the device, then cProfile of the queued
#                                                   path at tiny, CUDA graphs, 2,048 pages (where the host time goes)
set -u
WHAT=${1:-check}
PAGES=${2:-300}
if [ ! -f ocr_model/weights/optimem-small/config.json ]; then
  mkdir -p /tmp/w && xz -T0 -dc .cw/w.tar.xz | tar -x -C /tmp/w && rm -rf ocr_model/weights/optimem-small \
    && cp -r /tmp/w/optimem-small ocr_model/weights/ || exit 1
fi
python3 -c "import torch, PIL; print('torch', torch.__version__, 'pillow', PIL.__version__, torch.cuda.get_device_name())"
if [ "$WHAT" = profile ]; then
  timeout 150 python3 scripts/gpu/read_profile.py --syncs 2>&1 | grep -A12 "=====" | grep -v Warn
  timeout 200 python3 scripts/gpu/read_profile.py --graphs --pages=2048 --tiers=tiny 2>&1 | grep -v Warn | sed -e 's/  */ /g' \
    | grep -v "^ *$"
  exit 0
fi
if [ "$WHAT" = speed ] && [ "${TESTS:-1}" = 1 ]; then
  pip install -q --no-index --no-deps .wheels/*.whl 2>&1 | grep -v WARN | tail -1
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/optimem/test_reader.py tests/ocr_model/test_image_process.py \
    -k "gpu or overlapped or queued or copy_pixels" 2>&1 | tail -2
fi
if [ "$WHAT" = speed ]; then
  python3 benchmarks/read_speed.py --device cuda --pages "$PAGES" --batch "${BATCH:-128}" --tiers "${TIERS:-base,small,tiny}" \
    --repeats 2 --quick --compile ${OWN:+--own-only} --json "$OUT/rs${BATCH:-128}.json" 2>&1 | grep -v '^ \|^{\|^}\|^W1'
  exit 0
fi
timeout 240 python3 scripts/gpu/encoder_bench.py --pages 256 --compile --json "$OUT/enc.json" 2>&1 | grep -v Warn
pip install -q --no-index --no-deps .wheels/*.whl 2>&1 | tail -1
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/ocr_model/test_image_process.py tests/ocr_model/test_deepencoder.py \
  tests/ocr_model/test_glyph_readout.py -k "resample or fold or gpu or fused" 2>&1 | tail -2
timeout 300 python3 scripts/gpu/same_texts.py "$PAGES" 2>&1 | grep -v Warn
