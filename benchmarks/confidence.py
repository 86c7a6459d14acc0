"""How well a turn's confidence tells a misread turn from an exact one, and its calibration.

    python benchmarks/confidence.py [--model DIR] [--pages 4] [--tiers base,small,tiny] [--json out.json]
                                    [--fit calibration.json]

Turns of held-out corpus text (never trained on; per kind: English dialogue, prose and code, accented Latin,
Greek, Cyrillic, Chinese, Japanese, Korean) are drawn as Memory draws them (optimem.pageout.draw_verified
without verification: plain, or escaped where the text needs it), stored as Memory stores them (base,
16 greys, then faded to the tier), and read with the model's default reader. For every turn on the page:
exact or not, and three scores over its own cells' probabilities (ocr_model.reader.turn_score, log scale):
`mean` (mean log p; exp of it was Recollection.confidence up to run s4), `prod` (sum log p: the model's own
probability that every cell is right) and `min` (the least sure cell).

Pages alternate between a fitting half and a reporting half (even / odd page index). On the fitting half,
the score that separates exact from inexact turns best (AUROC) is picked per tier and one logistic curve,
P(exact) = 1 / (1 + exp(-(a * score + b))), is fitted; the report gives,
on the other half, AUROC of each score per kind and tier, and the calibrated probability's reliability
(turns binned by predicted P(exact): predicted vs observed share exact). `--fit FILE` writes the fitted
curves ({tier: {score, a, b}}) to ship beside the checkpoint (calibration.json, read by optimem.pageout).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("dialogue", "prose", "code", "latin", "greek", "cyrillic", "zh", "ja", "ko")


def auroc(scores, labels) -> float | None:
    """P(score of a random exact turn > score of a random inexact one), ties half; None without both."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    s = np.array(scores, dtype=float)
    order = s.argsort(kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks of ties
        m = s == v
        ranks[m] = ranks[m].mean()
    y = np.array(labels, dtype=bool)
    return float((ranks[y].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fit_logistic(x, y, steps: int = 3000, lr: float = 0.5) -> tuple[float, float]:
    """P(y) = sigmoid(a * x + b) by gradient descent on the log loss (x standardised while fitting)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    mu, sd = x.mean(), x.std() or 1.0
    z = (x - mu) / sd
    a = b = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(a * z + b)))
        a -= lr * float(((p - y) * z).mean())
        b -= lr * float((p - y).mean())
    return a / sd, b - a * mu / sd


def turn_scores(reading, layout, tid) -> dict[str, float] | None:
    """The turn's scores on their log scale (ocr_model.reader.turn_score), from its own cells."""
    from ocr_model.reader import SCORES, turn_score

    segs = {k for k, s in enumerate(layout.segments) if s.turn_id == tid}
    cells = getattr(reading, "cells", None)
    if not segs or cells is None:
        return None
    ps = np.concatenate([cells[p.row, p.col:p.col + p.width] for p in layout.pieces if p.segment in segs and p.width > 0])
    return {s: turn_score(ps, s) for s in SCORES}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--corpus", default="corpus", help="corpus directory (its held-out split is read)")
    ap.add_argument("--pages", type=int, default=4, help="pages per kind (half fit, half report)")
    ap.add_argument("--tiers", default="base,small,tiny")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--fit", default=None, help="write the fitted curves here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from ocr_model import data
    from ocr_model.page import Turn, page_at_tier, render_turns
    from ocr_model.page.codec import as_stored
    from ocr_model.reader import load
    from optimem.pageout import draw_verified, read_turn_texts, unescape_for

    reader = load(args.model)
    corpus = data.Corpus(args.corpus, "heldout")
    rng = random.Random(args.seed)
    tiers = args.tiers.split(",")
    rows = []  # (tier, kind, half, exact, scores)
    for kind in KINDS:
        for k in range(args.pages):
            turns, n = [], 0
            while n < 2400:
                text = corpus.sample(kind, rng, n_chars=rng.randint(20, 300)).strip() or "x"
                turns.append(Turn("user" if len(turns) % 2 == 0 else "assistant", text, id=len(turns) + 1))
                n += len(text) + 20
            drawn = draw_verified(turns, None, first_turn_number=1, tier="base", levels=16, verify=False)
            page = drawn.pages[0]
            on_page = {s.turn_id for s in page.layout.segments if not s.continues}
            stored = as_stored(page.image, "base")
            for tier in tiers:
                im = stored if tier == "base" else as_stored(page_at_tier(stored, tier), tier)
                (reading,) = reader.read([im], tier)
                texts, _ = read_turn_texts([reading], [page.layout])
                for t in turns:
                    if t.id not in on_page or t.id not in drawn.checks:
                        continue
                    got = unescape_for(drawn.checks[t.id].form, texts.get(t.id, ""))
                    sc = turn_scores(reading, page.layout, t.id)
                    if sc is not None:
                        rows.append((tier, kind, k % 2, got == t.text, sc))
            print(kind, k, len(rows), flush=True)

    out = {"turns": len(rows), "tiers": {}}
    curves = {}
    for tier in tiers:
        fit = [r for r in rows if r[0] == tier and r[2] == 0]
        rep = [r for r in rows if r[0] == tier and r[2] == 1]
        # the score that separates best on the fitting half, on a log scale, then one logistic curve
        feat = lambda r, s: r[4][s]
        best = max(("mean", "prod", "min"), key=lambda s: auroc([feat(r, s) for r in fit], [r[3] for r in fit]) or 0.0)
        a, b = fit_logistic([feat(r, best) for r in fit], [r[3] for r in fit])
        curves[tier] = {"score": best, "a": round(a, 5), "b": round(b, 5)}
        cal = lambda r: 1 / (1 + math.exp(-(a * feat(r, best) + b)))
        t_out = {"fit_turns": len(fit), "report_turns": len(rep), "exact_share": round(np.mean([r[3] for r in rep]), 4),
                 "curve": curves[tier], "auroc": {}, "reliability": []}
        for kind in ("all",) + KINDS:
            sel = [r for r in rep if kind == "all" or r[1] == kind]
            t_out["auroc"][kind] = {s: (None if (v := auroc([r[4][s] for r in sel], [r[3] for r in sel])) is None else round(v, 3))
                                    for s in ("mean", "prod", "min")} | {"n": len(sel), "inexact": sum(not r[3] for r in sel)}
        for lo, hi in ((0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.01)):
            sel = [r for r in rep if lo <= cal(r) < hi]
            if sel:
                t_out["reliability"].append({"predicted": f"{lo:.2f}-{min(hi, 1):.2f}", "turns": len(sel),
                                             "mean_predicted": round(float(np.mean([cal(r) for r in sel])), 3),
                                             "observed_exact": round(float(np.mean([r[3] for r in sel])), 3)})
        out["tiers"][tier] = t_out
        print(tier, json.dumps(t_out), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.fit:
        Path(args.fit).write_text(json.dumps({"about": "P(turn exact) = 1 / (1 + exp(-(a * score + b))) per tier, score over the turn's cells "
                                              "(ocr_model.reader.turn_score): mean log p, sum log p (prod) or log min p; "
                                              "benchmarks/confidence.py", "curves": curves}, indent=1))


if __name__ == "__main__":
    main()
