"""The default embedder under load: per-call latency by thread count and OpenMP wait policy, long turns, long queries.

    python benchmarks/embed_speed.py [--sizes 50000,200000] [--adds 20] [--json embed_speed.json]

Each measurement runs in a fresh child process (the OpenMP wait policy is read once, when the runtime starts,
and peak memory is per process), with the default embedder and an instant reader (no OCR model), so the
numbers are the embedder's and Memory's own:
  short     p50 / p95 ms of Memory.add of a short turn and Memory.recall(decode=False), per (policy, threads)
  long      seconds and peak RSS growth of Memory.add of one turn of N characters (it pages out at once:
            rendering and PNG included), and the seconds spent inside the embedder
  query     seconds of Memory.recall(decode=False) with a query of N characters
Numbers depend on what else runs on the machine; the script prints the load average beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = "the harbor engine violet cloud pencil garden silver thunder river apple window orange bridge".split()


def _text(n_chars: int, seed: int = 0) -> str:
    out, i, n = [], seed, 0
    while n < n_chars:
        w = WORDS[(i * 7 + i // 3) % len(WORDS)] + (str(i) if i % 11 == 0 else "")
        out.append(w)
        n, i = n + len(w) + 1, i + 1
    return " ".join(out)[:n_chars]


class _Timed:
    """Wraps an Embedder and adds up the seconds spent in it."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.seconds = inner, inner.name, inner.dim, 0.0

    def embed_documents(self, texts):
        t = time.perf_counter()
        try:
            return self.inner.embed_documents(texts)
        finally:
            self.seconds += time.perf_counter() - t

    def embed_queries(self, texts):
        t = time.perf_counter()
        try:
            return self.inner.embed_queries(texts)
        finally:
            self.seconds += time.perf_counter() - t


def child(kind: str, arg: int, threads: int) -> dict:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from speed import InstantReader

    from optimem import Memory
    from optimem.embed import E5Embedder, HybridEmbedder

    emb = _Timed(HybridEmbedder(E5Embedder(threads=threads)))
    with Memory(model=InstantReader(), embedder=emb) as m:
        m.add_many([_text(200, i) for i in range(20)])  # warm-up: load, first calls
        if kind == "short":
            adds, recalls = [], []
            for i in range(arg):
                t = time.perf_counter()
                m.add(_text(200, 100 + i))
                adds.append(time.perf_counter() - t)
                t = time.perf_counter()
                m.recall(_text(60, 500 + i), k=5, decode=False, reinforce=False)
                recalls.append(time.perf_counter() - t)
            q = lambda xs, p: 1000 * sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]  # noqa: E731
            return {"add_p50_ms": q(adds, 0.5), "add_p95_ms": q(adds, 0.95),
                    "recall_p50_ms": q(recalls, 0.5), "recall_p95_ms": q(recalls, 0.95)}
        text = _text(arg, 7 if kind == "long" else 9)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        emb.seconds = 0.0
        t = time.perf_counter()
        if kind == "long":
            m.add(text)
        else:
            m.recall(text, k=5, decode=False, reinforce=False)
        secs = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"seconds": secs, "embed_seconds": emb.seconds, "peak_rss_growth_mb": (rss - rss0) / 1024,
                "vectors": m.stats().vectors}


def _run_child(kind: str, arg: int, threads: int, policy: str | None) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(arg), str(threads)],
        env=env, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {kind} {arg} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="50000,200000", help="characters of the long turns and queries")
    ap.add_argument("--adds", type=int, default=20, help="short adds and recalls timed per setting")
    ap.add_argument("--threads", default="1,2", help="thread counts to time short calls with ('' = skip them)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), int(args.child[2]))))
        return {}
    res: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cpus", "load_at_start": os.getloadavg()[0],
                 "short": [], "long": [], "query": []}
    for policy in ("ACTIVE", None):
        for th in [int(x) for x in args.threads.split(",") if x]:
            r = _run_child("short", args.adds, th, policy)
            res["short"].append({"policy": policy or "default (PASSIVE, set by optimem)", "threads": th, **r})
            print(res["short"][-1], file=sys.stderr)
    for n in [int(x) for x in args.sizes.split(",") if x]:
        res["long"].append({"chars": n, **_run_child("long", n, 2, None)})
        print(res["long"][-1], file=sys.stderr)
        res["query"].append({"chars": n, **_run_child("query", n, 2, None)})
        print(res["query"][-1], file=sys.stderr)
    res["load_at_end"] = os.getloadavg()[0]
    print(f"machine {res['machine']}, load {res['load_at_start']:.1f} -> {res['load_at_end']:.1f}\n")
    print("| OMP_WAIT_POLICY | threads | add p50 ms | add p95 ms | recall p50 ms | recall p95 ms |")
    print("|---|---|---|---|---|---|")
    for r in res["short"]:
        print(f"| {r['policy']} | {r['threads']} | {r['add_p50_ms']:.0f} | {r['add_p95_ms']:.0f} | "
              f"{r['recall_p50_ms']:.0f} | {r['recall_p95_ms']:.0f} |")
    print("\n| what | characters | seconds | of which embedding | peak RSS growth MB | vectors in store |")
    print("|---|---|---|---|---|---|")
    for r in res["long"]:
        print(f"| add one turn | {r['chars']:,} | {r['seconds']:.1f} | {r['embed_seconds']:.1f} | "
              f"{r['peak_rss_growth_mb']:.0f} | {r['vectors']} |")
    for r in res["query"]:
        print(f"| recall, query of | {r['chars']:,} | {r['seconds']:.2f} | {r['embed_seconds']:.2f} | "
              f"{r['peak_rss_growth_mb']:.0f} | |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1), encoding="utf-8")
    return res


if __name__ == "__main__":
    main()
