#!/usr/bin/env bash
# One device call for the fused glyph readout (issue 13): the shipped weights travel as .cw/w.tar.xz
# (`bash scripts/gpu/pack_weights.sh`, the weights moved out of the tree), pytest as .wheels, carry [".cw", ".wheels"]:
#   bash scripts/gpu/readout_lease.sh [pages]
# GPU tests; fused vs reference readout on doc pages (texts, cell probabilities); the readout alone at 128 base
# pages; benchmarks/read_speed.py at batch 128.
set -u
PAGES=${1:-512}
mkdir -p /tmp/w && xz -T0 -dc .cw/w.tar.xz | tar -x -C /tmp/w && rm -rf ocr_model/weights/optimem-small \
  && cp -r /tmp/w/optimem-small ocr_model/weights/ || exit 1
pip install -q --no-index --no-deps .wheels/*.whl 2>&1 | tail -1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/ocr_model/test_glyph_readout.py tests/optimem/test_reader.py \
  -k "gpu or overlapped or block_topk or fused or reference" 2>&1 | tail -4
timeout 300 python3 - <<'PY'
import sys, time, torch
sys.path.insert(0, "benchmarks")
from read_speed import doc_pages
from ocr_model.eval import char_precision
from ocr_model.reader import load
from ocr_model.page import page_at_tier
from ocr_model.page.codec import as_stored
pages = doc_pages(300)
for tier in ("base", "tiny"):
    ims = [as_stored(p.image, "base") for p in pages]
    if tier != "base":
        ims = [as_stored(page_at_tier(im, tier), tier) for im in ims]
    for views in ({}, None):
        readers = {"fused bf16": load(device="cuda", views=views, mode="grid", batch_size=64),
                   "fused fp32": load(device="cuda", dtype=torch.float32, views=views, mode="grid", batch_size=64),
                   "reference fp32": load(device="cuda", dtype=torch.float32, views=views, mode="grid", batch_size=64,
                                          fused=False)}
        got = {n: r.read(ims, tier) for n, r in readers.items()}
        ref = got["reference fp32"]
        for n, a in got.items():
            prec = sum(char_precision(p.text, x.text) for p, x in zip(pages, a)) / len(a)
            print(tier, "own view" if views == {} else "default views", n, f"precision {prec:.5f}; vs reference fp32:",
                  "identical texts", sum(x.text == y.text for x, y in zip(a, ref)), "/", len(a), "max cell prob diff",
                  f"{max(float(abs(x.cells - y.cells).max()) for x, y in zip(a, ref)):.2e}", flush=True)
PY
timeout 200 python3 scripts/gpu/readout_bench.py 2>&1 | grep -v Warn
python3 benchmarks/read_speed.py --device cuda --pages "$PAGES" --batch 128 --repeats 2 --json "$OUT/rs128.json" 2>&1 | grep -v '^ \|^{\|^}'
