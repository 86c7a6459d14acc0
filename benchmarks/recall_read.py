"""What a recall that reads pages costs on this machine, and what each way of reading gives back.

    python benchmarks/recall_read.py [--model DIR] [--turns 400] [--queries 20] [--k 5] [--json out.json]

A store of `--turns` conversation turns (the demo's packaged haystack text) is paged out with the real
model (`verify=False`, to build it fast), then faded by consolidate() to each tier in turn; at each tier
`recall(query, k)` is timed with the decoded-page cache off (`cache_pages=0`: every recall reads its pages
cold) for four readers side by side, on the same queries:

    cells+views   the default: only the cells of the recalled turns (their pieces: `reads_spans`), the
                  default views (optimem.reader)
    rows+views    whole rows of the recalled turns (a reader without `reads_spans`): the path before cells
    page+views    whole pages (the reader without `reads_rows`), default views: the path before rows
    rows+own      only the rows, each page read from its own tier's visual tokens (views={})
    page+own      whole pages, own view
    kept:first    cells+views with the token cache on (Memory's default, token_cache=True): the first
                  recall of each page encodes it and keeps its grids (this store was built unverified, so
                  none were kept at page-out; a verified page-out keeps them then)
    kept          the same queries again: every page read from its kept grids (glyph heads only)
    kept:rows     the same again, whole rows instead of the turns' cells (after kept: grids all kept)

The five first readers run with token_cache=False. Reported per tier and reader: recall latency p50 / p95
(seconds) and the recalled turns' read-back (exact share and mean character precision against the text
that was added), and the token cache's bytes on disk per page. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _char_precision(ref: str, got: str) -> float:
    import difflib

    if not ref and not got:
        return 1.0
    m = difflib.SequenceMatcher(None, ref, got, autojunk=False)
    return sum(b.size for b in m.get_matching_blocks()) / max(len(ref), len(got), 1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--turns", type=int, default=400, help="turns in the store")
    ap.add_argument("--queries", type=int, default=20, help="recalls timed per tier and reader")
    ap.add_argument("--k", type=int, default=5, help="turns per recall")
    ap.add_argument("--tiers", default="base,small,tiny", help="tiers to fade the store to, in order")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default=None, help="comma-separated readers to time (default: all eight)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from demos.haystack import default_pool
    from ocr_model.reader import load
    from optimem import ForgettingPolicy, Memory
    from optimem.embed import HashingEmbedder

    import random

    pool, _ = default_pool(args.seed)
    random.Random(args.seed).shuffle(pool)
    turns = [{"role": t["role"], "content": t["text"]} for conv in pool for t in conv][: args.turns]
    texts = [t["content"] for t in turns]
    reader = load(args.model)
    policy = ForgettingPolicy(initial_strength=10.0 * args.turns)  # the store's turns differ in age by 0.1 S
    results: dict = {"machine": os.cpu_count(), "turns": len(turns), "k": args.k, "tiers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        m = Memory(Path(tmp) / "s", model=reader, embedder=HashingEmbedder(512), verify=False, keep_recent=0,
                   cache_pages=0, working_tokens=200, policy=policy, auto_consolidate=False, token_cache=False)
        ids = m.add_many(turns)
        truth = dict(zip(ids, texts))
        queries = [texts[i] for i in range(0, len(texts), max(1, len(texts) // args.queries))][: args.queries]
        # the clock (turns) at which retention R = exp(-t/S) falls into each tier's band (forgetting.py)
        ages = {"base": 0, "small": 1.0, "tiny": 1.85, "gist": 2.5}
        last = len(turns)
        for tier in args.tiers.split(","):
            m.consolidate(now=last + ages[tier] * policy.initial_strength)
            tiers = [m.get(t, decode=False).tier for t in ids]
            share = sum(x == tier for x in tiers) / len(tiers)
            row = {"share_at_tier": round(share, 3)}
            for name, rows, spans, views, kept in (
                    ("cells+views", True, True, None, False), ("rows+views", True, False, None, False),
                    ("page+views", False, False, None, False), ("rows+own", True, False, {}, False),
                    ("page+own", False, False, {}, False), ("kept:first", True, True, None, True),
                    ("kept", True, True, None, True), ("kept:rows", True, False, None, True)):
                if args.modes and name not in args.modes.split(","):
                    continue
                from ocr_model.reader import DEFAULT_VIEWS

                reader.views = dict(DEFAULT_VIEWS if views is None else views)
                type(reader).reads_rows, type(reader).reads_spans = rows, spans
                m.token_cache = kept
                lat, exact, prec = [], [], []
                for q in queries:
                    t0 = time.perf_counter()
                    hits = m.recall(q, k=args.k, reinforce=False)
                    lat.append(time.perf_counter() - t0)
                    for h in hits:
                        if h.tier == "verbatim":
                            continue
                        ref = truth[h.turn_id]
                        exact.append(h.text == ref)
                        prec.append(_char_precision(ref, h.text or ""))
                lat.sort()
                row[name] = {"p50_s": round(statistics.median(lat), 3), "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3),
                             "turns_read": len(exact), "exact": round(sum(exact) / max(1, len(exact)), 4),
                             "precision": round(sum(prec) / max(1, len(prec)), 5)}
                if kept:
                    files = list((Path(tmp) / "s" / "tokens").rglob("*.npz"))
                    row[name]["kept_pages"] = len(files)
                    row[name]["kb_per_page"] = round(sum(f.stat().st_size for f in files) / max(1, len(files)) / 1024, 1)
                print(tier, f"({share:.0%} of turns)", name, row[name], flush=True)
            type(reader).reads_rows = type(reader).reads_spans = True
            results["tiers"][tier] = row
        m.close()
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
