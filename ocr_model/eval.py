"""Evaluate a reader: render texts as plain pages, encode at a tier, decode, score.

    python -m ocr_model.eval --texts FILE.jsonl --tier base --out OUT.jsonl [--model DIR]
    python -m ocr_model.eval --report --corpus corpus/ [--model DIR] [--tiers base,small,tiny] [--pages 8]

FILE.jsonl holds {"id": ..., "text": ...} per line. Each text becomes ONE plain page (no turn header) through
the library renderer (text past the page is cut); OUT.jsonl gets, per line, {"id", "reference" (the text as
rendered on the page), "decoded", "visual_tokens", "eos", "seconds"}.

`--report` samples held-out pages of every text kind from the corpus (never training text) and prints the
Fox-style table: character precision = max(0, 1 - edit distance / reference length), the Fox word-set
precision |ref words & hyp words| / |hyp words|, and the loop rate (no EOS before the length cap), per tier
and per text kind; `--json` also writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import torch

from ocr_model import page as pg


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one numpy pass per character of `a` (insertions via a running minimum)."""
    if not a:
        return len(b)
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1, dtype=np.int64)
    prev = idx.copy()
    for i, ch in enumerate(np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32), 1):
        cur = np.empty_like(prev)
        cur[0] = i
        # substitution / match and deletion, vectorised over j
        cur[1:] = np.minimum(prev[:-1] + (bb != ch), prev[1:] + 1)
        # insertion: cur[j] = min_k<=j (cur[k] + j - k)
        cur = np.minimum.accumulate(cur - idx) + idx
        prev = cur
    return int(prev[-1])


def char_precision(reference: str, decoded: str) -> float:
    if not reference:
        return 1.0 if not decoded else 0.0
    return max(0.0, 1.0 - edit_distance(reference, decoded) / len(reference))


def fox_word_precision(reference: str, decoded: str) -> float:
    ref, hyp = set(reference.split()), set(decoded.split())
    return len(ref & hyp) / len(hyp) if hyp else (1.0 if not ref else 0.0)


def load_reader(model_dir: str | None, device: str = "cpu", max_new_tokens: int = 1200, batch_size: int = 8,
                mode: str = "auto", views: dict | None = None):
    """The library's page reader (`ocr_model.reader.load`) over a checkpoint (default: shipped); `mode` picks
    grid (glyph heads), decoder, or auto. `views` None or {} (the default here, unlike the library's) reads
    each page from its own tier's visual tokens only, so precision is measured at the tier's compression."""
    from ocr_model.reader import load

    return load(model_dir, device=device, max_new_tokens=max_new_tokens, batch_size=batch_size, mode=mode,
                views=views or {})


def visual_tokens(tier: str, reader=None, method: str = "decoder") -> int:
    """Visual tokens one page at a tier is read from (the paper's count: the grid, without newlines and
    separator): the tier's own, or, for a grid reading through several views, the sum over the views."""
    views = reader.grid_views(tier) if reader is not None and method == "grid" else {tier: 1.0}
    return sum(pg.TIERS[t].tokens for t in views)


def read_pages(reader, images: list, tier: str, levels: int = 256) -> list:
    """Full-resolution page images -> `ocr_model.reader.Reading`s, through the renderer's one resampling function.
    levels < 256: with the grey levels Memory stores them with (`page_levels`; 256 = as rendered)."""
    from ocr_model.page.codec import as_stored

    return reader.read([as_stored(im, tier, levels) for im in images], tier)


def needle_page(corpus, rng: random.Random):
    """A held-out prose page with one fact holding a random ID on a random line of its first 30 rows.
    Returns (page, the ID)."""
    from ocr_model import data

    value = data.random_id(rng)
    fact = f"The access code for locker {rng.randint(1, 99)} is {value}."
    lines = corpus.sample("prose", rng, n_chars=2600).split("\n")
    at = rng.randint(0, min(len(lines), 30))
    page = pg.render_plain_page("\n".join(lines[:at] + [fact] + lines[at:]))
    if value not in page.text:  # the lines above it filled the page: put the fact first
        page = pg.render_plain_page("\n".join([fact] + lines))
    return page, value


def run_texts(args) -> None:
    reader = load_reader(args.model, args.device, args.max_new_tokens, args.batch_size, args.reader, args.views)
    with open(args.texts) as f:
        items = [json.loads(line) for line in f if line.strip()]
    with open(args.out, "w") as out:
        for k in range(0, len(items), args.batch_size):
            chunk = items[k:k + args.batch_size]
            pages = [pg.render_plain_page(str(it["text"])) for it in chunk]
            t0 = time.time()
            res = read_pages(reader, [p.image for p in pages], args.tier, args.page_levels)
            dt = (time.time() - t0) / len(chunk)
            for it, page, r in zip(chunk, pages, res):
                rec = {"id": it.get("id"), "reference": page.text, "decoded": r.text,
                       "visual_tokens": visual_tokens(args.tier, reader, r.method), "eos": r.complete, "seconds": round(dt, 3)}
                out.write(json.dumps(rec) + "\n")


def report(args) -> dict:
    from ocr_model import data

    reader = load_reader(args.model, args.device, args.max_new_tokens, args.batch_size, args.reader, args.views)
    corpus = data.Corpus(args.corpus, "heldout")
    rng = random.Random(args.seed)
    full = data.Stage("full", max_rows=pg.ROWS, min_rows=pg.ROWS)
    # (kind, page, needle ID or None)
    kinds = data.KINDS + data.EXTRA_KINDS + (data.SCRIPT_KINDS + data.MEMORY_KINDS if args.scripts else ())
    pages = [(kind, data.make_page(corpus, full, rng, kind)[0], None) for kind in kinds for _ in range(args.pages)]
    pages += [("needles", *needle_page(corpus, rng)) for _ in range(args.needles)]
    if args.kinds:  # read only these kinds' pages (drawn as without the option: the same pages)
        pages = [p for p in pages if p[0] in args.kinds.split(",")]
    results: dict = {}
    confusions: dict[str, dict[tuple[str, str], int]] = {}
    for tier in args.tiers.split(","):
        rows = []
        for k in range(0, len(pages), args.batch_size):
            chunk = pages[k:k + args.batch_size]
            t0 = time.time()
            res = read_pages(reader, [p.image for _, p, _ in chunk], tier, args.page_levels)
            dt = (time.time() - t0) / len(chunk)
            for (kind, page, needle), r in zip(chunk, res):
                confusions.setdefault(tier, {})
                for pair, n in substitutions(page.text, r.text).items():
                    confusions[tier][pair] = confusions[tier].get(pair, 0) + n
                rows.append({"kind": kind, "cp": char_precision(page.text, r.text), "method": r.method,
                             "needle_exact": (needle in r.text) if needle is not None else None,
                             "fox": fox_word_precision(page.text, r.text), "loop": not r.complete, "seconds": dt,
                             "visual_tokens": visual_tokens(tier, reader, r.method), "ref_chars": len(page.text)})
        results[tier] = rows
    print(f"reader mode: {args.reader}, views {args.views}, page grey levels {args.page_levels}; 'all' = the {len(data.KINDS)} text kinds above it; 'symbols' = text with the "
          "listed non-ASCII characters (glyphs.EXTRA_CHARS); 'needles' = held-out prose pages with one random-ID fact, "
          "'exact' = the ID read verbatim")
    print(f"{'tier':6} {'kind':13} {'pages':>5} {'char prec':>9} {'fox prec':>8} {'loops':>6} {'grid':>5} {'exact':>6} {'s/page':>7}")
    summary = {}
    for tier, rows in results.items():
        for kind in [*data.KINDS, "all", *data.EXTRA_KINDS, "needles", *(data.SCRIPT_KINDS + data.MEMORY_KINDS)]:
            sel = [r for r in rows if r["kind"] == kind or (kind == "all" and r["kind"] in data.KINDS)]
            if not sel:
                continue
            s = {"pages": len(sel), "char_precision": float(np.mean([r["cp"] for r in sel])),
                 "fox_precision": float(np.mean([r["fox"] for r in sel])), "loop_rate": float(np.mean([r["loop"] for r in sel])),
                 "grid_share": float(np.mean([r["method"] == "grid" for r in sel])),
                 "seconds_per_page": float(np.mean([r["seconds"] for r in sel]))}
            if kind == "needles":
                s["needle_exact"] = float(np.mean([r["needle_exact"] for r in sel]))
            summary[f"{tier}/{kind}"] = s
            exact = f"{s['needle_exact']:6.3f}" if "needle_exact" in s else f"{'':6}"
            print(f"{tier:6} {kind:13} {s['pages']:5d} {s['char_precision']:9.3f} {s['fox_precision']:8.3f} "
                  f"{s['loop_rate']:6.2f} {s['grid_share']:5.2f} {exact} {s['seconds_per_page']:7.2f}")
    if args.scripts:
        print("scripts: held-out text per script (ocr_model.corpus_scripts); chat = conversation pages as Memory draws "
              "them; fenced_code = highlighted code in ``` fences; all_glyphs = every drawable character")
    print("\nmost frequent substitutions (drawn -> read), per tier, over all pages above:")
    top = {}
    for tier, conf in confusions.items():
        top[tier] = sorted(conf.items(), key=lambda kv: -kv[1])[:12]
        print(f"{tier:6} " + ", ".join(f"{a!r}->{b!r} {n}" for (a, b), n in top[tier]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "pages": results,
                       "confusions": {t: [[a, b, n] for (a, b), n in v] for t, v in top.items()}}, f, indent=1)
    return summary


def substitutions(ref: str, hyp: str) -> dict[tuple[str, str], int]:
    """Character substitutions (drawn, read) on rows that were read with the right length (grid readings keep
    the layout, so a row of equal length is aligned cell by cell)."""
    out: dict[tuple[str, str], int] = {}
    for a, b in zip(ref.split("\n"), hyp.split("\n")):
        if len(a) != len(b):
            continue
        for x, y in zip(a, b):
            if x != y:
                out[(x, y)] = out.get((x, y), 0) + 1
    return out


def parse_views(spec: str) -> dict:
    """'own' -> {}, 'default' -> ocr_model.reader.DEFAULT_VIEWS, 'base=0.5,small=1' -> {'base': 0.5, 'small': 1.0}."""
    from ocr_model.reader import DEFAULT_VIEWS

    if spec in ("own", ""):
        return {}
    if spec == "default":
        return dict(DEFAULT_VIEWS)
    try:
        out = {t.strip(): float(w) for t, w in (part.split("=") for part in spec.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"views: 'own', 'default' or TIER=WEIGHT,... (e.g. small=1,tiny=0.5); got {spec!r}") from None
    unknown = sorted(set(out) - set(pg.TIERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"views: unknown tiers {unknown}; choose from {', '.join(pg.TIERS)}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ocr_model.eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", help="JSONL of {id, text}; each text is one plain page")
    ap.add_argument("--tier", default="base", choices=sorted(pg.TIERS), help="resolution tier to encode at")
    ap.add_argument("--out", help="output JSONL (with --texts)")
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--report", action="store_true", help="print the Fox-style table on held-out corpus pages")
    ap.add_argument("--corpus", default="corpus", help="corpus directory (with --report)")
    ap.add_argument("--tiers", default="base,small,tiny", help="comma-separated tiers (with --report)")
    ap.add_argument("--pages", type=int, default=8, help="held-out pages per text kind (with --report)")
    ap.add_argument("--scripts", type=int, default=1,
                    help="1: also report every script and the pages Memory draws (chat, fenced code, emoji, ...)")
    ap.add_argument("--kinds", default=None, help="with --report: read only the pages of these kinds (e.g. cyrillic,greek,latin,chat)")
    ap.add_argument("--needles", type=int, default=20, help="needle pages (a random ID on held-out prose; with --report)")
    ap.add_argument("--reader", default="auto", choices=("auto", "grid", "decoder"),
                    help="auto: glyph heads where they can spell the page, else the decoder (see ocr_model.reader)")
    ap.add_argument("--views", default="own", type=parse_views,
                    help="glyph-head views besides the page's own tier: 'own' (none: the tier's visual tokens only), "
                         "'default' (the library's: base=0.5,small=1,tiny=0.5) or TIER=WEIGHT,...")
    ap.add_argument("--page-levels", type=int, default=256, choices=(2, 4, 16, 256),
                    help="grey levels of the page images read: 256 = as rendered; 16 = as Memory stores them by "
                         "default (ocr_model.page.PAGE_LEVELS)")
    ap.add_argument("--json", default=None, help="also write the report's numbers here (with --report)")
    ap.add_argument("--seed", type=int, default=0, help="page sampling seed (with --report)")
    ap.add_argument("--batch-size", type=int, default=8, help="pages decoded together")
    ap.add_argument("--max-new-tokens", type=int, default=1200, help="hard cap on decoded tokens per page")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    args = ap.parse_args(argv)
    if args.report:
        report(args)
    elif args.texts and args.out:
        run_texts(args)
    else:
        ap.error("give --texts FILE --out FILE, or --report")


if __name__ == "__main__":
    main()
