"""Renderer speed on one CPU core: pages/s at 1024 x 1024 and ms per tier downsample.

    python benchmarks/render_speed.py [--pages 300]

Prints a table; asserts nothing (times depend on the machine).
"""

from __future__ import annotations

import argparse
import inspect
import os
import random
import statistics
import time

from ocr_model.page import TIERS, Turn, page_at_tier, render_plain_page, render_turns

WORDS = ("the of and to in is was for that with as on by at from this memory page agent token model text "
         "turn image render context window budget question answer because however meanwhile yesterday "
         "compression optical decoder encoder retrieval archive forgetting schedule evaluation").split()


def prose(rng: random.Random, n_chars: int) -> str:
    out, size = [], 0
    while size < n_chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + ". "
        if rng.random() < 0.15:
            sentence += "\n\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)


def code_text(skip: int) -> str:
    return "```python\n" + inspect.getsource(random)[skip:skip + 6000] + "\n```\n"


def bench(fn, items) -> tuple[float, float]:
    """(items per second, median ms per item) after one warm-up pass over a few items."""
    for x in items[:5]:
        fn(x)
    times = []
    t0 = time.perf_counter()
    for x in items:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    return len(items) / total, 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=300, help="pages rendered per measurement")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic text")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})      # one core
    rng = random.Random(args.seed)

    texts = [prose(rng, 3200) for _ in range(args.pages)]
    codes = [code_text(i * 7) for i in range(args.pages)]
    convs = [[Turn("user", prose(rng, rng.randint(50, 400)), timestamp=1.7e9 + 60 * i),
              Turn("assistant", prose(rng, rng.randint(200, 1500)), timestamp=1.7e9 + 60 * i + 30)]
             for i in range(args.pages)]

    print(f"renderer speed, one core, {args.pages} pages each, 1024x1024 L")
    print(f"{'workload':<40} {'pages/s':>9} {'ms/page (median)':>17}")
    for name, fn, items in [
        ("render_plain_page, prose", render_plain_page, texts),
        ("render_plain_page, fenced Python code", render_plain_page, codes),
    ]:
        rate, ms = bench(fn, items)
        print(f"{name:<40} {rate:9.1f} {ms:17.2f}")
    t0 = time.perf_counter()
    n_pages = sum(len(render_turns(c)) for c in convs)
    dt = time.perf_counter() - t0
    print(f"{'render_turns, 2-turn conversations':<40} {n_pages / dt:9.1f} {1000 * dt / n_pages:17.2f}")

    images = [render_plain_page(t).image for t in texts[:50]]
    print()
    print(f"{'tier':<8} {'size':>6} {'ms per page (median)':>21}")
    for tier, size in ((n, t.side) for n, t in TIERS.items()):
        _, ms = bench(lambda im: page_at_tier(im, tier), images)
        print(f"{tier:<8} {size:>6} {ms:21.2f}")


if __name__ == "__main__":
    main()
