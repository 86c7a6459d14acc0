"""Where a read's time goes (issue 13): cProfile of OpticalReader.read, own view, 512 doc pages per tier at
batch 128, on the device; top functions by own and by cumulative time. The default queued path; --threads the
worker-thread path (OpticalReader._ahead = False). --syncs: instead, where a read waits for the device (each
synchronizing call under torch.cuda.set_sync_debug_mode, with the reader's frames of its stack), counted.
--compile / --graphs: the encoder compiled (torch.compile's default mode / reduce-overhead, CUDA graphs).
    python3 scripts/gpu/read_profile.py [--threads | --syncs] [--compile | --graphs] [--pages=512] [--tiers=base,tiny]"""
import collections
import cProfile
import pstats
import sys
import traceback
import warnings

import torch

sys.path.insert(0, "benchmarks")
from read_speed import archived, doc_pages  # noqa: E402

from ocr_model.page import page_at_tier  # noqa: E402
from ocr_model.page.codec import as_stored  # noqa: E402
from ocr_model.reader import load  # noqa: E402

pages = doc_pages(int(next((a.split("=")[1] for a in sys.argv if a.startswith("--pages=")), 512)))
r = load(device="cuda", views={}, mode="grid", batch_size=128,
         compile="reduce-overhead" if "--graphs" in sys.argv else "--compile" in sys.argv)
r._ahead = False if "--threads" in sys.argv else None
tiers = next((a.split("=")[1] for a in sys.argv if a.startswith("--tiers=")), "base,tiny").split(",")
for tier in tiers:
    ims = [as_stored(p.image, "base") for p in pages]
    ims = [archived(im if tier == "base" else page_at_tier(im, tier), tier) for im in ims]
    r.read(ims, tier)
    if "--syncs" in sys.argv:
        seen = collections.Counter()

        def show(message, category, filename, lineno, file=None, line=None):
            frames = [f for f in traceback.extract_stack()[:-1] if "ocr_model" in f.filename]
            seen[" <- ".join(f"{f.filename.split('/')[-1]}:{f.lineno}" for f in frames[::-1][:4])] += 1

        warnings.showwarning = show
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        r.read(ims, tier)
        torch.cuda.set_sync_debug_mode(0)
        print("=====", tier, "synchronizing calls in one read of", len(ims), "pages:")
        for where, n in seen.most_common(20):
            print(f"  {n:4d}  {where}")
        continue
    pr = cProfile.Profile()
    pr.enable()
    r.read(ims, tier)
    pr.disable()
    print("=====", tier)
    pstats.Stats(pr).sort_stats("tottime").print_stats(15)
    pstats.Stats(pr).sort_stats("cumulative").print_stats(22)
