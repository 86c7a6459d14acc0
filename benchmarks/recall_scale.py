"""Recall latency without reading pages, at a large archive, for the default embedder's vector shape.

    python benchmarks/recall_scale.py [--turns 101000] [--queries 40] [--lexical 512,256] [--json out.json]

A store of `--turns` short turns is built with `add_many` (batches of 5,000) and an embedder of the default's
shape that costs nothing to run: HybridEmbedder(HashingEmbedder(384), lexical_dim=L), i.e. 384 dense + L
lexical dimensions (the default is multilingual-e5-small 384 + 512; E5 itself would take ~20 min per 100k
turns on 2 cores and does not change the search). Working memory is large enough that nothing is paged out,
so no model is needed; above 100,000 vectors the index is HNSW (`hnsw_threshold`). Then `recall(q, k=5,
decode=False, reinforce=False)` is timed for `--queries` queries (turn texts of the store): p50 / p95, and
where the time goes (query embedding, index search, the rest: candidate records, scoring). Nothing is
asserted; the load average is printed beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("harbor engine violet cloud pencil garden silver thunder river apple window orange bridge lantern "
         "meadow copper falcon candle marble anchor velvet basket summit ember willow quartz rocket canyon "
         "saddle prism tunnel maple").split()


class Instant:
    """A PageReader that is never asked to read (nothing is paged out); counts tokens as words."""

    name = "instant"

    def read(self, images, tier):
        raise AssertionError("nothing should be read here")

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=101_000, help="turns in the store (above 100,000 the index is HNSW)")
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--lexical", default="512,256", help="lexical dimensions to try (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from optimem import Memory
    from optimem.embed import HashingEmbedder, HybridEmbedder

    rng = random.Random(args.seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 30))) + f" #{i}" for i in range(args.turns)]
    out = {"turns": args.turns, "load_at_start": os.getloadavg()[0], "cpus": os.cpu_count(), "runs": []}
    for lex in [int(x) for x in args.lexical.split(",")]:
        emb = HybridEmbedder(HashingEmbedder(384), lexical_dim=lex)
        with tempfile.TemporaryDirectory() as tmp:
            m = Memory(Path(tmp) / "s", model=Instant(), embedder=emb, working_tokens=10**9, verify=False,
                       auto_consolidate=False)
            t0 = time.perf_counter()
            for s in range(0, len(texts), 5000):
                m.add_many([{"role": "user", "content": t} for t in texts[s:s + 5000]])
            build = time.perf_counter() - t0
            qs = [texts[rng.randrange(len(texts))] for _ in range(args.queries)]
            m.recall(qs[0], k=5, decode=False, reinforce=False)  # index loaded
            lat, emb_t, search_t = [], [], []
            for q in qs:
                t0 = time.perf_counter()
                m.recall(q, k=5, decode=False, reinforce=False)
                lat.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                v = emb.embed_queries([q])
                t2 = time.perf_counter()
                m._archive.search(v[0], 50)
                t3 = time.perf_counter()
                emb_t.append(t2 - t1)
                search_t.append(t3 - t2)
            lat.sort()
            run = {"lexical_dim": lex, "dim": emb.dim, "index": m.stats().index_kind, "build_s": round(build, 1),
                   "p50_ms": round(1000 * statistics.median(lat), 2), "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 2),
                   "embed_query_ms": round(1000 * statistics.median(emb_t), 2),
                   "index_search_50_ms": round(1000 * statistics.median(search_t), 2),
                   "load_after": round(os.getloadavg()[0], 2)}
            m.close()
        out["runs"].append(run)
        print(run, flush=True)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
