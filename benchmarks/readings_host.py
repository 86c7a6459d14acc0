"""The host side of a grid read: a batch's cells -> its Readings (homoglyphs, texts, confidences), batched as
OpticalReader does it against page by page, side by side (issue 13; no device needed).

    python benchmarks/readings_host.py [--pages 128] [--tier tiny] [--repeats 21]

Cells: what the shipped reader reads from `--pages` doc pages (read_speed.doc_pages, stored and faded as Memory
stores them) on this machine's CPU, captured on their way into `OpticalReader._readings`. Then, interleaved,
`--repeats` times each: the reader's `_readings` on the whole batch (glyphs.spell_pages, one pass for the
confidences) and the page-by-page path (resolve_homoglyphs, cells_text and a confidence per page: the reader's
until session 14). Prints the medians (ms per batch), their ratio, and whether texts and cells agree.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def page_by_page(reader, cls: np.ndarray, conf: np.ndarray) -> list:
    from ocr_model.page.glyphs import cells_text, resolve_homoglyphs
    from ocr_model.reader import Reading

    out = []
    for c, p in zip(cls, conf):
        c = resolve_homoglyphs(c)
        drawn = c != 0
        sel = p[drawn] if drawn.any() else p.reshape(-1)
        confidence = float(np.exp(np.log(np.maximum(sel, 1e-12)).mean()))
        out.append(Reading(cells_text(c), confidence, True, None, method="grid", cells=p.astype(np.float32),
                           _count=reader._counter))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=128)
    ap.add_argument("--tier", default="tiny")
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args()
    from read_speed import archived, doc_pages

    from ocr_model.page import page_at_tier
    from ocr_model.page.codec import as_stored
    from ocr_model.reader import load

    reader = load(device="cpu", views={}, mode="grid", batch_size=16)
    ims = [as_stored(p.image, "base") for p in doc_pages(args.pages)]
    ims = [archived(im if args.tier == "base" else page_at_tier(im, args.tier), args.tier) for im in ims]
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    batch = reader._readings
    reader._readings = lambda c, p: seen.append((c.copy(), p.copy())) or batch(c, p)
    t = time.perf_counter()
    reader.read(ims, args.tier)
    print(f"read {len(ims)} {args.tier} pages on the CPU in {time.perf_counter() - t:.1f} s")
    reader._readings = batch
    cls = np.concatenate([c for c, _ in seen])
    conf = np.concatenate([p for _, p in seen]).astype(np.float32)
    a, b = batch(cls, conf), page_by_page(reader, cls, conf)
    same = sum(x.text == y.text and np.array_equal(x.cells, y.cells) for x, y in zip(a, b))
    dconf = max(abs(x.confidence - y.confidence) for x, y in zip(a, b))
    tb, tp = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        batch(cls, conf)
        tb.append(time.perf_counter() - t)
        t = time.perf_counter()
        page_by_page(reader, cls, conf)
        tp.append(time.perf_counter() - t)
    mb, mp = statistics.median(tb) * 1e3, statistics.median(tp) * 1e3
    print(f"{len(cls)} pages: batched {mb:.2f} ms, page by page {mp:.2f} ms, ratio {mp / mb:.2f}; texts and cells "
          f"equal {same}/{len(cls)}, largest confidence difference {dconf:.1e}")


if __name__ == "__main__":
    main()
