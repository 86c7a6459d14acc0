"""Where a read's time goes (issue 13): cProfile of OpticalReader.read, own view, 512 doc pages per tier at
batch 128, on the device; top functions by own and by cumulative time. Overlap off by default; --pipeline
profiles the one-thread pipeline (OpticalReader._pipeline: all host work on the profiled thread).
    python3 scripts/gpu/read_profile.py [--pipeline]"""
import cProfile
import pstats
import sys

sys.path.insert(0, "benchmarks")
from read_speed import doc_pages  # noqa: E402

from ocr_model.page import page_at_tier  # noqa: E402
from ocr_model.page.codec import as_stored  # noqa: E402
from ocr_model.reader import load  # noqa: E402

pages = doc_pages(512)
piped = "--pipeline" in sys.argv
r = load(device="cuda", views={}, mode="grid", batch_size=128, overlap=piped)
r._pipeline = piped
for tier in ("base", "tiny"):
    ims = [as_stored(p.image, "base") for p in pages]
    if tier != "base":
        ims = [as_stored(page_at_tier(im, tier), tier) for im in ims]
    r.read(ims, tier)
    pr = cProfile.Profile()
    pr.enable()
    r.read(ims, tier)
    pr.disable()
    print("=====", tier)
    pstats.Stats(pr).sort_stats("tottime").print_stats(22)
    pstats.Stats(pr).sort_stats("cumulative").print_stats(30)
