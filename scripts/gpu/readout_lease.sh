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
timeout 240 python3 - <<'PY'
import sys, time, torch
sys.path.insert(0, "benchmarks")
from read_speed import doc_pages
from ocr_model.reader import load
from ocr_model.page import page_at_tier
from ocr_model.page.codec import as_stored
from ocr_model import glyph_readout as gr
pages = doc_pages(300)
for tier in ("base", "tiny"):
    ims = [as_stored(p.image, "base") for p in pages]
    if tier != "base":
        ims = [as_stored(page_at_tier(im, tier), tier) for im in ims]
    for views in ({}, None):
        fu = load(device="cuda", views=views, mode="grid", batch_size=64)
        ref = load(device="cuda", views=views, mode="grid", batch_size=64, fused=False)
        a, c = fu.read(ims, tier), ref.read(ims, tier)
        print(tier, "own view" if views == {} else "default views", "fused vs reference: identical texts",
              sum(x.text == y.text for x, y in zip(a, c)), "/", len(a), "max cell prob diff",
              max(float(abs(x.cells - y.cells).max()) for x, y in zip(a, c)), flush=True)
torch.manual_seed(0)
P, C, E = 128 * 2850, 17143, 64
for dt in (torch.bfloat16, torch.float32):
    f = torch.randn(P, E, device="cuda", dtype=dt)
    w, b = gr.padded(torch.randn(C, E, device="cuda", dtype=dt) * 0.3, torch.randn(C, device="cuda"))
    for name, fused in (("fused", True), ("reference", False)):
        gr.top_classes(f, w, b, 8, fused=fused); torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(3):
            gr.top_classes(f, w, b, 8, fused=fused)
        torch.cuda.synchronize()
        print(f"readout of 128 base pages, {dt}, {name}: {(time.perf_counter() - t0) / 3 * 1e3:.1f} ms", flush=True)
PY
python3 benchmarks/read_speed.py --device cuda --pages "$PAGES" --batch 128 --repeats 2 --json "$OUT/rs128.json" 2>&1 | grep -v '^ \|^{\|^}'
