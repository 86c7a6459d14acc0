"""The encoder alone (OpticalModel.encode_grid), variant by variant, on real pages (issue 13): pages/s per tier
at batch 128, bf16, for the SAM attention's reference bias table vs the folded bias (deepencoder._folded_attention),
each eager, and the folded one under torch.compile (--compile); the grids' largest difference from the reference; a CUDA-time profile
of the eager passes at base.
    python3 scripts/gpu/encoder_bench.py [--pages 256] [--compile] [--json out.json]   (one H200: docs/benchmarks.md)"""
import argparse
import json
import statistics
import sys
import time

import torch

sys.path.insert(0, "benchmarks")
from read_speed import doc_pages  # noqa: E402

from ocr_model.page import page_at_tier  # noqa: E402
from ocr_model.page.codec import as_stored  # noqa: E402
from ocr_model.reader import load  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--pages", type=int, default=256)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--compile", action="store_true")
ap.add_argument("--json", default=None)
args = ap.parse_args()

r = load(device="cuda", views={}, mode="grid")
model = r.model
attn = [b.attn for b in model.sam_model.blocks]
pages = doc_pages(args.pages)
out = {}


def fold(on: bool) -> None:
    for a in attn:
        a.fold_bias = on


def rate(fn, xs) -> float:
    for x in xs[:1]:
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        for x in xs:
            fn(x)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sum(x.shape[0] for x in xs) / statistics.median(times)


with torch.inference_mode():
    for tier in ("base", "small", "tiny"):
        ims = [as_stored(p.image, "base") for p in pages]
        if tier != "base":
            ims = [as_stored(page_at_tier(im, tier), tier) for im in ims]
        xs = [r.pixels(ims[s:s + args.batch], tier).contiguous() for s in range(0, len(ims), args.batch)]
        fold(False)
        ref = model.encode_grid(xs[0]).float()
        row = {}
        for name, on in (("reference", False), ("folded", True)):
            fold(on)
            row[name] = rate(model.encode_grid, xs)
            g = model.encode_grid(xs[0]).float()
            row[name + " max diff"] = float((g - ref).abs().max())
        if args.compile:
            for name, on in (("compiled folded", True),):
                fold(on)
                torch._dynamo.reset()
                enc = torch.compile(model.encode_grid, dynamic=False)
                t = time.perf_counter()
                enc(xs[0])
                torch.cuda.synchronize()
                row[name + " compile s"] = round(time.perf_counter() - t, 1)
                row[name] = rate(enc, xs)
                row[name + " max diff"] = float((enc(xs[0]).float() - ref).abs().max())
        row["grid abs max"] = float(ref.abs().max())
        out[tier] = row
        print(tier, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if True:
        tier = "base"
        ims = [as_stored(p.image, "base") for p in pages[: args.batch]]
        x = r.pixels(ims, tier).contiguous()
        for on in (False, True):
            fold(on)
            model.encode_grid(x)
            torch.cuda.synchronize()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                model.encode_grid(x)
                torch.cuda.synchronize()
            print("profile, base, batch", args.batch, "folded" if on else "reference")
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60))
if args.json:
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
