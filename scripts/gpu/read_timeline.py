"""Is a read device-bound or host-bound (issue 13)? One read of N doc pages at one tier (own view, batch 128,
the queued path, the encoder as CUDA graphs unless --eager), timed three ways in one run: the wall clock;
the device time of each batch (CUDA events recorded as its work is queued and as it ends: a batch's span
on the device, gaps included only where the device waited inside it); and torch.profiler's device time per
kernel over a second read (top 18 by total time).
    python3 scripts/gpu/read_timeline.py [--pages=2048] [--tier=tiny] [--eager]"""
import statistics
import sys
import time

import torch

sys.path.insert(0, "benchmarks")
from read_speed import archived, doc_pages  # noqa: E402

from ocr_model.page import page_at_tier  # noqa: E402
from ocr_model.page.codec import as_stored  # noqa: E402
from ocr_model.reader import load  # noqa: E402

arg = {a.split("=")[0]: a.split("=")[1] for a in sys.argv[1:] if "=" in a}
n, tier = int(arg.get("--pages", 2048)), arg.get("--tier", "tiny")
r = load(device="cuda", views={}, mode="grid", batch_size=128, compile=False if "--eager" in sys.argv else "reduce-overhead")
ims = [as_stored(p.image, "base") for p in doc_pages(n)]
ims = [archived(im if tier == "base" else page_at_tier(im, tier), tier) for im in ims]
r.read(ims, tier)  # warm-up (compiles)

starts: list = []
queue = r._queue_batch


def timed(*a, **kw):
    e = torch.cuda.Event(enable_timing=True)
    e.record()
    starts.append(e)
    out = queue(*a, **kw)
    e = torch.cuda.Event(enable_timing=True)
    e.record()
    ends.append(e)
    return out


ends: list = []
r._queue_batch = timed
for _ in range(2):
    starts.clear(), ends.clear()
    torch.cuda.synchronize()
    t = time.perf_counter()
    r.read(ims, tier)
    wall = time.perf_counter() - t
    spans = [s.elapsed_time(e) for s, e in zip(starts, ends)]  # ms: each batch from its start to its end on the device
    first_to_last = starts[0].elapsed_time(ends[-1])
    print(f"{tier}: {n} pages in {wall * 1e3:.0f} ms = {n / wall:.0f} pages/s; batches {len(spans)}; device span "
          f"first start to last end {first_to_last:.0f} ms; per batch median {statistics.median(spans):.1f} ms "
          f"(min {min(spans):.1f}, max {max(spans):.1f}); wall per batch {wall * 1e3 / len(spans):.1f} ms")
    gaps = [ends[i].elapsed_time(starts[i + 1]) for i in range(len(spans) - 1)]
    print(f"  device busy {sum(spans):.0f} ms of {first_to_last:.0f}; idle between batches (the device waiting for "
          f"the host to queue the next), ms: {[round(g, 1) for g in gaps]}")
r._queue_batch = queue
from torch.profiler import ProfilerActivity, profile  # noqa: E402

with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    r.read(ims, tier)
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))
