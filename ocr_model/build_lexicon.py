"""Build ocr_model/page/homoglyph_lexicon.json: how the training text spells the words drawn with shared shapes only.
(Here, not in ocr_model.page: it reads the corpus through ocr_model.data, which sits above the page format.)

    python -m ocr_model.build_lexicon --corpus corpus [--chat-pages 2000] [--keep 4000]

Run by a maintainer after a change to the corpus or to the rules of `glyphs.resolve_homoglyphs` (the table is
keyed by what those rules spell); the result is committed. Reads the TRAINING split only (every kind the corpus
has, through `data.Corpus`, laid out as plain pages, plus `--chat-pages` conversation pages drawn from it as
Memory draws them, seed 1234); never the held-out split.

Every page is reduced to what a perfect shape reader sees (each cell its homoglyph group's canonical class)
and resolved with the lexicon off; for each word whose letters are all shared shapes ('HOME', 'ОК', 'у') it
counts, per context (the page's script and its row's: glyphs._lexicon_context) and spelling the rules gave,
which spelling was drawn. Kept: the `--keep` entries
whose most drawn spelling is not the rules' and is drawn most often more than theirs (only spellings of
common letters: `glyphs._common`), with the counts, so the thresholds that pick the entries used
(glyphs.LEXICON_MIN_GAIN, LEXICON_MIN_SHARE) can change without a rebuild.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import multiprocessing

CHUNK = 200_000  # characters laid out at once


def _count(pages_cells) -> collections.Counter:
    """[(ROWS, COLS) drawn classes] -> Counter of (context, rules' spelling, drawn spelling)."""
    from ocr_model.page import glyphs

    table = glyphs.classes()
    canon_of = glyphs.group_of_classes(glyphs.n_classes())
    out: collections.Counter = collections.Counter()
    for cls in pages_cells:
        seen: list = []
        glyphs.resolve_homoglyphs(canon_of[cls], _seen=seen)  # the rules alone: _seen turns the lexicon off
        for page, r, a, b, spelled in seen:
            out[page, spelled, "".join(table[k] for k in cls[r, a:b])] += 1
    return out


def _count_text(text: str) -> collections.Counter:
    from ocr_model.page import render_plain
    from ocr_model.page.glyphs import glyph_classes

    return _count([glyph_classes(p.cell_codes()) for p in render_plain(text)])


_CORPUS = None  # the corpus the chat pages are drawn from (set before the worker processes fork)


def _count_chat(args) -> collections.Counter:
    from ocr_model import data
    from ocr_model.page.glyphs import glyph_classes

    seed, n = args
    rng = random.Random(seed)
    return _count([glyph_classes(data.conversation_page(_CORPUS, rng).cell_codes()) for _ in range(n)])


def _chunks(text: str):
    start = 0
    while start < len(text):
        end = text.find("\n", start + CHUNK)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def build(corpus, chat_pages: int, keep: int, workers: int = 2) -> dict:
    """The lexicon (as stored) from a `data.Corpus`'s texts and `chat_pages` conversation pages drawn from it."""
    global _CORPUS
    from ocr_model import data
    from ocr_model.page import glyphs

    _CORPUS = corpus
    jobs = [chunk for kind in sorted(corpus.texts) for chunk in _chunks(corpus.texts[kind].replace(data.RS, "\n\n"))]
    counts: collections.Counter = collections.Counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:  # fork: the workers share _CORPUS
        for c in pool.imap_unordered(_count_text, jobs):
            counts.update(c)
        per = max(1, chat_pages // (4 * workers))
        chat = [(1234 + i, min(per, chat_pages - i * per)) for i in range((chat_pages + per - 1) // per)]
        for c in pool.imap_unordered(_count_chat, chat):
            counts.update(c)
    drawn: dict = collections.defaultdict(collections.Counter)  # (page, rules' spelling) -> drawn spellings
    for (page, spelled, truth), n in counts.items():
        drawn[page, spelled][truth] += n
    index = glyphs._class_index()
    rows = []
    for (page, spelled), got in drawn.items():
        usable = [(n, w) for w, n in got.items() if all(ch in index and glyphs._common(ch) for ch in w)]
        if not usable:
            continue
        n_new, new = max(usable)
        n_old = got.get(spelled, 0)
        if new != spelled and n_new > n_old:
            rows.append((n_new - n_old, page, spelled, new, n_new, n_old, sum(got.values())))
    rows.sort(key=lambda t: (-t[0], t[1], t[2]))
    pages: dict = {}
    for _, page, spelled, new, n_new, n_old, n in rows[:keep]:
        pages.setdefault(page, {})[spelled] = [new, n_new, n_old, n]
    return {"about": "ocr_model.build_lexicon: tied words, per context (page script, row script): rules' spelling -> "
                     "[most drawn spelling, its count, the rules' spelling's count, all]",
            "pages": {p: dict(sorted(w.items())) for p, w in sorted(pages.items())}}


def main(argv=None) -> None:
    from ocr_model.page.glyphs import LEXICON_FILE

    ap = argparse.ArgumentParser(prog="python -m ocr_model.build_lexicon", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--chat-pages", type=int, default=2000)
    ap.add_argument("--keep", type=int, default=4000, help="entries kept (the largest gains)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(LEXICON_FILE))
    args = ap.parse_args(argv)
    from ocr_model import data

    lex = build(data.Corpus(args.corpus, "train"), args.chat_pages, args.keep, args.workers)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(lex, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"{args.out}: " + ", ".join(f"{p} {len(w)}" for p, w in lex["pages"].items()))


if __name__ == "__main__":
    main()
