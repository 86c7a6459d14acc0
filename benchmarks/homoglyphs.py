"""How often the homoglyph resolver picks the wrong member, with a perfect shape reader.

    python benchmarks/homoglyphs.py [--kinds cyrillic,greek,latin,chat] [--pages 150] [--split train] [--json out.json]

Pages of the corpus (`python -m ocr_model.data build` + `corpus_scripts`; the TRAINING split by default, so
rules are tuned away from the held-out pages the evaluation reads) are drawn by `data.make_page` as full
38-row pages; every cell is replaced by its homoglyph group's canonical class (what a reader that gets
every shape right sees), `resolve_homoglyphs` picks the members, and the cells that differ from the drawn
text are counted. Reported per kind: the share of non-blank cells wrong and the most frequent wrong words
(drawn -> resolved). Nothing is asserted.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--kinds", default="cyrillic,greek,latin,chat")
    ap.add_argument("--pages", type=int, default=150, help="pages per kind")
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from ocr_model import data
    from ocr_model import page as pg
    from ocr_model.page import glyphs

    corpus = data.Corpus(args.corpus, args.split)
    full = data.Stage("full", max_rows=pg.ROWS, min_rows=pg.ROWS)
    canon_of = glyphs.group_of_classes(glyphs.n_classes())
    out = {}
    for kind in args.kinds.split(","):
        rng = random.Random(args.seed)
        wrong = cells = 0
        words: collections.Counter = collections.Counter()
        for _ in range(args.pages):
            page = data.make_page(corpus, full, rng, kind)[0]
            cls = glyphs.glyph_classes(page.cell_codes())
            got = glyphs.resolve_homoglyphs(canon_of[cls])
            bad = got != cls
            wrong += int(bad.sum())
            cells += int((cls != 0).sum())
            for r in sorted(set(bad.nonzero()[0].tolist())):
                ref, hyp = glyphs.cells_text(cls[r : r + 1]).split(" "), glyphs.cells_text(got[r : r + 1]).split(" ")
                words.update(f"{a} -> {b}" for a, b in zip(ref, hyp) if a != b)
        out[kind] = {"pages": args.pages, "cells": cells, "wrong": wrong, "wrong_share": wrong / max(cells, 1),
                     "top_words": words.most_common(12)}
        print(f"{kind:10s} pages {args.pages:4d}  cells {cells:8d}  wrong {wrong:6d}  = {100 * wrong / max(cells, 1):.3f}%")
        print("           " + "; ".join(f"{w} x{n}" for w, n in words.most_common(12)))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
