"""Cold-start times: `optimem stats`, opening a Memory, its first recall, and the first recall that reads a page.

    python benchmarks/open_speed.py                    # the shipped model, E5, 120 turns (~half archived)
    python benchmarks/open_speed.py --repeats 5 --json open_speed.json

Builds one store (not timed), then times each step in fresh Python processes, `--repeats` times, and prints
the median and range:

    cli stats            `python -m optimem.cli stats STORE`, the whole process (what a shell user waits)
    import optimem       `import optimem` in a fresh process
    Memory(path)         opening the store: SQLite, FAISS index, embedder; the OCR model is not loaded
    recall, no decode    the first recall(decode=False): embeds the query, searches; no page is read
    recall, verbatim     the first recall whose hits are all still text (working memory)
    recall, read page    the first recall that reads an archived page: loads the OCR model, then reads it
    recall again         a second such recall in the same process (model loaded; another page)

Numbers depend on the machine and its load; docs/benchmarks.md says where they were measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEPS = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import optimem
    t1 = time.perf_counter()
    m = optimem.Memory(sys.argv[1], model=sys.argv[2] or None, read_only=True)
    t2 = time.perf_counter()
    m.recall("what did we say about the harbour?", k=3, decode=False)
    t3 = time.perf_counter()
    hit = m.recall(sys.argv[3], k=1)[0]
    t4 = time.perf_counter()
    a = m.recall(sys.argv[4], k=1)[0]
    t5 = time.perf_counter()
    b = m.recall(sys.argv[5], k=1)[0]
    t6 = time.perf_counter()
    assert hit.tier == "verbatim" and a.tier != "verbatim" and b.tier != "verbatim", (hit.tier, a.tier, b.tier)
    print(json.dumps({"import optimem": t1 - t0, "Memory(path)": t2 - t1, "recall, no decode": t3 - t2,
                      "recall, verbatim": t4 - t3, "recall, read page": t5 - t4, "recall again": t6 - t5}))
""")


def _turn(i: int) -> str:
    return (f"Note {i}: the ferry to island {i} leaves pier {i % 7} at {8 + i % 10}:15; bring ticket QX-{1000 + i}. "
            "The harbour office closes early on Sundays, and the cafe by the lighthouse sells cold drinks. " * 2)


def build_store(path: Path, turns: int, model: str | None) -> None:
    from optimem import Memory

    with Memory(path, model=model, verify=False) as m:  # timings of opening and recall, not of page-out
        m.add_many([_turn(i) for i in range(turns)])
        st = m.stats()
    if st.turns_archived < 2 or st.turns_verbatim < 1:
        raise SystemExit(f"the store needs archived and verbatim turns; got {st}; pass a larger --turns")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="OCR checkpoint directory (default: the shipped model)")
    ap.add_argument("--turns", type=int, default=120, help="turns in the store (default 120)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per measurement (default 3)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "store"
        build_store(store, args.turns, args.model)
        samples: dict[str, list[float]] = {"cli stats": []}
        last, far = args.turns - 1, args.turns // 6  # the newest turn (verbatim); two old ones on different pages
        queries = [f"ticket QX-{1000 + last} island {last}", "ticket QX-1000 island 0", f"ticket QX-{1000 + far} island {far}"]
        for _ in range(args.repeats):
            t = time.perf_counter()
            cmd = [sys.executable, "-m", "optimem.cli", "stats", str(store)]
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            samples["cli stats"].append(time.perf_counter() - t)
            out = subprocess.run([sys.executable, "-c", STEPS, str(store), args.model or "", *queries],
                                 check=True, env=env, capture_output=True, text=True).stdout
            for k, v in json.loads(out).items():
                samples.setdefault(k, []).append(v)
    rows = {k: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)} for k, v in samples.items()}
    print(f"| step ({args.repeats} fresh processes, {args.turns} turns) | median s | min - max s |")
    print("|---|---|---|")
    for k, r in rows.items():
        print(f"| {k} | {r['median_s']:.2f} | {r['min_s']:.2f} - {r['max_s']:.2f} |")
    result = {"turns": args.turns, "repeats": args.repeats, "cpus": os.cpu_count(), "steps": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
