"""Compression vs precision in the form of DeepSeek-OCR's Table 2 (Fox), on our held-out pages.

    python -m ocr_model.data build --out corpus/        # once: the text corpus (corpus/ is not in git)
    python benchmarks/fox_like.py --corpus corpus/ [--model DIR] [--pages 2] [--json fox.json] [--plot fox.png]

Held-out pages (`ocr_model.data.Corpus(corpus, "heldout")`: text never trained on) of every real and
synthetic kind are rendered as plain pages by the library renderer, counted in cl100k_base tokens
(quicktok-v1; the paper counts with DeepSeek-OCR's own ~129k-vocab tokenizer), and sorted into the paper's
text-token buckets 600-700 ... 1200-1300 (pages outside them are skipped; dense kinds fill the upper
buckets, since a 75 x 38 page of prose holds ~600 tokens). Each page is read at the tiers
    tiny 512 px = 64 visual tokens, small 640 px = 100, base 1024 px = 256, gist 384 px = 36
(`optimem.pg.page_at_tier`, visual tokens counted the paper's way: (side / 64) ** 2) by the model, and
by Tesseract 5 (`--psm 6`, OMP_THREAD_LIMIT=1) and RapidOCR 3 (angle classifier off) on the same images
when they are installed (`apt-get install tesseract-ocr`, `pip install -e ".[ocr-baselines]"`).

Scores per page (`ocr_model.eval`): character precision = max(0, 1 - edit distance / reference length),
the Fox word-set precision |ref words & hyp words| / |hyp words| (the Fox evaluator's precision, which the
paper most likely reports), and character precision after collapsing whitespace (OCR engines drop
indentation). Compression = text tokens / visual tokens. The paper's numbers are printed beside ours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ocr_model import page as pg

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # Tesseract: one thread is ~4x faster here than OpenMP's default

BUCKETS = tuple((lo, lo + 100) for lo in range(600, 1300, 100))
BELOW = (300, 600)  # not in the paper: most real prose and dialogue pages hold fewer than 600 cl100k tokens
TIER_TOKENS = {t: pg.TIERS[t].tokens for t in ("gist", "tiny", "small", "base")}  # the page format's tier table
# DeepSeek-OCR Table 2 (Fox, English, 100 pages): bucket -> (64-token precision %, compression, 100-token
# precision %, compression, pages)
PAPER = {
    (600, 700): (96.5, 10.5, 98.5, 6.7, 7),
    (700, 800): (93.8, 11.8, 97.3, 7.5, 28),
    (800, 900): (83.8, 13.2, 96.8, 8.5, 28),
    (900, 1000): (85.9, 15.1, 96.8, 9.7, 14),
    (1000, 1100): (79.3, 16.5, 91.5, 10.6, 11),
    (1100, 1200): (76.4, 17.7, 89.8, 11.3, 8),
    (1200, 1300): (59.1, 19.7, 87.1, 12.6, 4),
}


def bucket_of(n_tokens: int, buckets: Sequence[tuple[int, int]] = BUCKETS) -> tuple[int, int] | None:
    for lo, hi in buckets:
        if lo <= n_tokens < hi:
            return (lo, hi)
    return None


def squash(text: str) -> str:
    """Whitespace runs -> one space, ends stripped: compares characters without layout."""
    return re.sub(r"\s+", " ", text).strip()


def sample_pages(
    corpus: Any,
    per_bucket: int,
    count: Callable[[str], int],
    seed: int,
    max_tries: int = 4000,
    buckets: Sequence[tuple[int, int]] = BUCKETS,
) -> list[dict]:
    """Held-out full pages, `per_bucket` per text-token bucket where the corpus can fill it."""
    from ocr_model import data

    rng = random.Random(seed)
    full = data.Stage("full", max_rows=pg.ROWS, min_rows=pg.ROWS)
    kinds = [k for k in data.KINDS if k != "random_chars"]  # random characters are not a document
    chosen: dict[tuple[int, int], list[dict]] = {b: [] for b in buckets}
    for i in range(max_tries):
        if all(len(v) >= per_bucket for v in chosen.values()):
            break
        kind = kinds[i % len(kinds)]
        page, _, _ = data.make_page(corpus, full, rng, kind)
        n = count(page.text)
        b = bucket_of(n, buckets)
        # mix kinds: during the first half of the tries, one kind may fill at most half a bucket
        cap = -(-per_bucket // 2) if i < max_tries // 2 else per_bucket
        if b is not None and len(chosen[b]) < per_bucket and sum(p["kind"] == kind for p in chosen[b]) < cap:
            chosen[b].append({"bucket": b, "kind": kind, "text_tokens": n, "page": page})
    return [p for b in buckets for p in chosen[b]]


# ---------------------------------------------------------------------------------------------------
# readers: each maps (images at a tier, tier) -> texts


class ModelReader:
    name = "optimem model"

    def __init__(self, model_dir: str | None, max_new_tokens: int, batch_size: int) -> None:
        from ocr_model.eval import load_reader

        self.reader = load_reader(model_dir, "cpu", max_new_tokens, batch_size)

    def read(self, images: Sequence[Any], tier: str) -> list[str]:
        from ocr_model.eval import read_pages

        return [r.text for r in read_pages(self.reader, list(images), tier)]


class TesseractReader:
    name = "Tesseract"

    def __init__(self) -> None:
        import pytesseract

        self.version = str(pytesseract.get_tesseract_version())  # raises when the binary is missing
        self._tess = pytesseract
        self.name = f"Tesseract {self.version.split()[0]}"

    def read(self, images: Sequence[Any], tier: str) -> list[str]:
        return [self._tess.image_to_string(im, config="--psm 6").rstrip() for im in images]


class RapidReader:
    name = "RapidOCR"

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self._engine = RapidOCR(params={"Global.use_cls": False, "Global.log_level": "error"})
        try:
            from importlib.metadata import version

            self.name = f"RapidOCR {version('rapidocr')}"
        except Exception:  # noqa: BLE001 - the name is cosmetic
            pass

    def read(self, images: Sequence[Any], tier: str) -> list[str]:
        out = []
        for im in images:
            r = self._engine(np.asarray(im.convert("RGB")))
            out.append("\n".join(r.txts or ()) if r is not None else "")
        return out


def baseline_readers(names: Sequence[str]) -> tuple[list[Any], list[str]]:
    """The OCR engines that are installed, and a note for each one that is not."""
    readers, notes = [], []
    for name, cls, how in (
        ("tesseract", TesseractReader, "apt-get install tesseract-ocr && pip install pytesseract"),
        ("rapidocr", RapidReader, "pip install rapidocr onnxruntime"),
    ):
        if name not in names:
            continue
        try:
            readers.append(cls())
        except Exception as e:  # noqa: BLE001 - any failure to start an engine means: skip it, say why
            notes.append(f"{name} skipped ({type(e).__name__}: {str(e)[:80]}); install: {how}")
    return readers, notes


# ---------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    import torch

    from demos.haystack import token_counter
    from ocr_model import data
    from ocr_model.eval import char_precision, fox_word_precision
    from ocr_model.page import page_at_tier

    torch.set_num_threads(args.threads)
    counter_name, encode, _ = token_counter()
    corpus = data.Corpus(args.corpus, "heldout")
    buckets = ((BELOW,) if args.below else ()) + BUCKETS
    pages = sample_pages(corpus, args.pages, lambda t: len(encode(t)), args.seed, args.max_tries, buckets)
    filled = {p["bucket"] for p in pages}
    notes = [
        f"no held-out page fell in {lo}-{hi} tokens in {args.max_tries} tries (a 75 x 38 page of real text "
        "holds ~550-1000 cl100k tokens)"
        for lo, hi in BUCKETS
        if (lo, hi) not in filled
    ]
    tiers = args.tiers.split(",")
    readers: list[Any] = [ModelReader(args.model, args.max_new_tokens, args.batch_size)] if not args.no_model else []
    base_readers, skipped = baseline_readers(args.baselines.split(",") if args.baselines else [])
    notes += skipped
    readers += base_readers
    rows = []
    for reader in readers:
        for tier in tiers:
            images = [page_at_tier(p["page"].image, tier) for p in pages]
            t0 = time.time()
            texts = reader.read(images, tier)
            dt = (time.time() - t0) / max(1, len(images))
            for p, hyp in zip(pages, texts):
                ref = p["page"].text
                rows.append(
                    {
                        "reader": reader.name,
                        "tier": tier,
                        "visual_tokens": TIER_TOKENS[tier],
                        "kind": p["kind"],
                        "bucket": list(p["bucket"]),
                        "text_tokens": p["text_tokens"],
                        "compression": p["text_tokens"] / TIER_TOKENS[tier],
                        "char_precision": char_precision(ref, hyp),
                        "fox_precision": fox_word_precision(ref, hyp),
                        "char_precision_squashed": char_precision(squash(ref), squash(hyp)),
                        "seconds_per_page": dt,
                        "decoded_chars": len(hyp),
                        "reference_chars": len(ref),
                    }
                )
            if not args.quiet:
                sel = [r for r in rows if r["reader"] == reader.name and r["tier"] == tier]
                print(
                    f"  {reader.name:16} {tier:5} fox {np.mean([r['fox_precision'] for r in sel]):.3f} "
                    f"char {np.mean([r['char_precision'] for r in sel]):.3f}  {dt:.2f} s/page",
                    file=sys.stderr,
                )
    model_dir = readers[0].reader.model.cfg.name if readers and isinstance(readers[0], ModelReader) else None
    return {
        "config": {
            "model": args.model or "shipped",
            "model_config": model_dir,
            "corpus": args.corpus,
            "pages_per_bucket": args.pages,
            "tiers": tiers,
            "token_counter": counter_name,
            "max_new_tokens": args.max_new_tokens,
            "seed": args.seed,
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        },
        "pages": [{"bucket": list(p["bucket"]), "kind": p["kind"], "text_tokens": p["text_tokens"]} for p in pages],
        "notes": notes,
        "rows": rows,
        "paper": {f"{lo}-{hi}": v for (lo, hi), v in PAPER.items()},
    }


def _counts(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def table(results: dict) -> str:
    """Markdown: per reader, bucket x tier Fox precision / char precision (compression), paper beside."""
    rows, tiers = results["rows"], results["config"]["tiers"]
    readers = list(dict.fromkeys(r["reader"] for r in rows))
    out = []
    for reader in readers:
        head = "| text tokens | pages (kinds) | " + " | ".join(f"{t} ({TIER_TOKENS[t]} vt)" for t in tiers)
        head += " | paper 64 vt | paper 100 vt |"
        out += [
            f"**{reader}**: Fox word precision / character precision (compression)",
            "",
            head,
            "|---|---|" + "---|" * (len(tiers) + 2),
        ]
        for lo, hi in (BELOW,) + BUCKETS:
            sel = [r for r in rows if r["reader"] == reader and r["bucket"] == [lo, hi]]
            if not sel:
                continue
            cells = []
            for t in tiers:
                s = [r for r in sel if r["tier"] == t]
                cells.append(
                    f"{100 * np.mean([r['fox_precision'] for r in s]):.1f}% / "
                    f"{100 * np.mean([r['char_precision'] for r in s]):.1f}% "
                    f"({np.mean([r['compression'] for r in s]):.1f}x)"
                )
            p = PAPER.get((lo, hi))
            paper = f" | {p[0]}% ({p[1]}x) | {p[2]}% ({p[3]}x) |" if p else " | (not in the paper) | |"
            first = [r for r in sel if r["tier"] == sel[0]["tier"]]
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(_counts(r["kind"] for r in first).items()))
            out.append(f"| {lo}-{hi} | {len(first)} ({kinds}) | " + " | ".join(cells) + paper)
        allc = []
        for t in tiers:
            s = [r for r in rows if r["reader"] == reader and r["tier"] == t]
            allc.append(
                f"{100 * np.mean([r['fox_precision'] for r in s]):.1f}% / "
                f"{100 * np.mean([r['char_precision'] for r in s]):.1f}% "
                f"({np.median([r['seconds_per_page'] for r in s]):.1f} s/page)"
            )
        out += ["| all | | " + " | ".join(allc) + " | | |", ""]
    for note in results["notes"]:
        out.append(f"- {note}")
    return "\n".join(out) + "\n"


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    paper64 = [(v[1], v[0]) for v in PAPER.values()]
    paper100 = [(v[3], v[2]) for v in PAPER.values()]
    ax.plot(*zip(*sorted(paper64)), "k--o", label="DeepSeek-OCR, 64 vt (paper)", ms=4)
    ax.plot(*zip(*sorted(paper100)), "k:s", label="DeepSeek-OCR, 100 vt (paper)", ms=4)
    markers = {"gist": "v", "tiny": "o", "small": "s", "base": "D"}
    colors = {}
    for reader in dict.fromkeys(r["reader"] for r in results["rows"]):
        for t in results["config"]["tiers"]:
            pts = []
            for lo, hi in (BELOW,) + BUCKETS:
                s = [r for r in results["rows"] if r["reader"] == reader and r["tier"] == t and r["bucket"] == [lo, hi]]
                if s:
                    pts.append((np.mean([r["compression"] for r in s]), 100 * np.mean([r["fox_precision"] for r in s])))
            if pts:
                kw = {"color": colors[reader]} if reader in colors else {}
                line = ax.plot(*zip(*pts), "-" + markers.get(t, "o"), ms=5, alpha=0.8, **kw)[0]
                colors.setdefault(reader, line.get_color())
        ax.plot([], [], "-", color=colors.get(reader, "gray"), label=reader)
    for t, m in markers.items():
        if t in results["config"]["tiers"]:
            ax.plot([], [], m, color="gray", label=f"{t} ({TIER_TOKENS[t]} vt)")
    ax.set_xscale("log")
    ax.set_xlabel("compression (text tokens / visual tokens)")
    ax.set_ylabel("Fox word precision (%)")
    ax.set_ylim(0, 102)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    ax.set_title("Precision vs compression on held-out pages (ours) and Fox (paper)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--corpus", default="corpus", help="corpus directory (build it: python -m ocr_model.data build --out corpus/)"
    )
    ap.add_argument("--model", default=None, help="OCR model checkpoint directory (default: the shipped model)")
    ap.add_argument("--no-model", action="store_true", help="only the OCR engines (no optimem model)")
    ap.add_argument("--pages", type=int, default=2, help="held-out pages per text-token bucket")
    ap.add_argument("--tiers", default="tiny,small,base,gist", help="comma-separated tiers")
    ap.add_argument("--baselines", default="tesseract,rapidocr", help="OCR engines to run beside ('' for none)")
    ap.add_argument("--max-new-tokens", type=int, default=1400, help="cap on tokens decoded per page")
    ap.add_argument("--batch-size", type=int, default=8, help="pages decoded together")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0, help="page sampling seed")
    ap.add_argument(
        "--below",
        action="store_true",
        help="also fill a 300-600 token bucket (not in the paper; where most prose and dialogue pages fall)",
    )
    ap.add_argument("--max-tries", type=int, default=1500, help="held-out pages rendered while filling the buckets")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--plot", default=None, help="write the precision-vs-compression PNG here")
    ap.add_argument("--quiet", action="store_true", help="no per-tier progress lines")
    args = ap.parse_args(argv)
    if not Path(args.corpus).is_dir():
        ap.error(f"--corpus {args.corpus}: not a directory; build it with python -m ocr_model.data build --out corpus/")
    results = run(args)
    text = table(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.plot:
        plot(results, args.plot)
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
