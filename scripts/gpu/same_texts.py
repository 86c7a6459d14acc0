"""Do the GPU read paths read what the reference reads? (issue 13) Doc pages at base and tiny, own view and
default views: the GPU default (bf16), fp32, fp32 with the folded SAM bias, against the reference (fp32, the
readout's reference path, the bias table, views resampled by Pillow); precision, identical texts, largest cell
probability difference. First, resample_pages on the device against Pillow.
    python3 scripts/gpu/same_texts.py [pages]      (one H200: docs/benchmarks.md)"""
import sys

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from read_speed import doc_pages  # noqa: E402

from ocr_model.eval import char_precision  # noqa: E402
from ocr_model.image_process import resample_pages  # noqa: E402
from ocr_model.page import page_at_tier  # noqa: E402
from ocr_model.page.codec import as_stored  # noqa: E402
from ocr_model.reader import load  # noqa: E402

pages = doc_pages(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
stored = [as_stored(p.image, "base") for p in pages]
x = torch.from_numpy(np.stack([np.asarray(im) for im in stored[:64]])).cuda()
for tier, side in (("small", 640), ("tiny", 512)):
    ref = np.stack([np.asarray(page_at_tier(im, tier)) for im in stored[:64]])
    print("resample_pages on the GPU vs Pillow, 64 base pages ->", tier, "identical:",
          bool((resample_pages(x, side).cpu().numpy() == ref).all()))
for tier in ("base", "tiny"):
    ims = stored if tier == "base" else [as_stored(page_at_tier(im, tier), tier) for im in stored]
    for views in ({}, None):
        kw = dict(device="cuda", views=views, mode="grid", batch_size=64)
        readers = {"gpu default (bf16)": load(**kw),
                   "fp32": load(dtype=torch.float32, **kw),
                   "fp32 folded": load(dtype=torch.float32, fold_bias=True, **kw),
                   "reference fp32": load(dtype=torch.float32, fused=False, **kw)}
        readers["gpu threads (bf16)"] = load(**kw)
        readers["gpu threads (bf16)"]._ahead = False  # the worker-thread path: each batch waited for
        readers["reference fp32"]._device_resample = False
        got = {n: r.read(ims, tier) for n, r in readers.items()}
        ref = got["reference fp32"]
        for n, a in got.items():
            prec = sum(char_precision(p.text, r.text) for p, r in zip(pages, a)) / len(a)
            print(tier, "own view" if views == {} else "default views", n, f"precision {prec:.5f}; vs reference fp32:",
                  "identical texts", sum(r.text == s.text for r, s in zip(a, ref)), "/", len(a), "max cell prob diff",
                  f"{max(float(abs(r.cells - s.cells).max()) for r, s in zip(a, ref)):.2e}", flush=True)
