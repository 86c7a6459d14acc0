"""The training data engine: glyph slot geometry, targets, text sampling, page crops."""
from __future__ import annotations

import gzip
import lzma
import random
import string

import numpy as np
import pytest

from ocr_model import data, glyphs
from ocr_model import page as pg


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> str:
    """A minimal corpus in the build format (the real one is built from installed packages)."""
    d = tmp_path_factory.mktemp("corpus")
    docs = {
        "prose": ["The quick brown fox jumps over the lazy dog. " * 40, "Another document.\nWith lines.\n" * 30],
        "dialogue": ["User: hello\nAssistant: hi there, how can I help?\n" * 20],
        "code": ["def f(x):\n    if x:\n        return x * 2\n    return 0\n" * 30],
    }
    for kind, texts in docs.items():
        for split in ("train", "heldout"):  # the build writes xz; older corpora are gzip: both are read
            opener, ext = (lzma.open, "xz") if kind == "prose" else (gzip.open, "gz")
            with opener(d / f"{kind}.{split}.txt.{ext}", "wt", encoding="utf-8") as f:
                f.write(data.RS.join(texts))
    with gzip.open(d / "words.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(["alpha", "beta", "gamma", "delta", "vault", "code"]))
    return str(d)


@pytest.mark.parametrize("tier", sorted(pg.TIERS))
def test_slot_table_assigns_every_cell_to_exactly_one_token(tier):
    grid = pg.TIERS[tier].grid
    table = data.slot_table(grid)
    cells = table[table >= 0]
    assert table.shape[:2] == (grid, grid)
    assert len(cells) == pg.ROWS * pg.COLS
    assert len(set(cells.tolist())) == pg.ROWS * pg.COLS


def test_slot_table_cells_lie_inside_their_token_region():
    grid = 16
    span = pg.PAGE_SIZE / grid
    table = data.slot_table(grid)
    for i in range(grid):
        for j in range(grid):
            for cell in table[i, j][table[i, j] >= 0]:
                r, c = divmod(int(cell), pg.COLS)
                x = pg.MARGIN_X + (c + 0.5) * pg.CELL_W
                y = pg.MARGIN_Y + (r + 0.5) * pg.CELL_H
                assert j * span <= x < (j + 1) * span and i * span <= y < (i + 1) * span


def test_glyph_classes_mapping():
    from ocr_model.page.glyphs import WIDE_RIGHT, classes

    codes = np.array([[0, 32, ord("!"), ord("A"), ord("~"), 0x4E2D, -1, 0xFFFD]], dtype=np.int32)
    # a CJK character has its own class now (the shipped CJK font draws it); -1 is a wide char's right half
    assert data.glyph_classes(codes).tolist() == [[0, 0, 1, ord("A") - 32, 94, classes().index("中"), WIDE_RIGHT, 95]]


def test_glyph_targets_match_the_rendered_text():
    page = pg.render_plain_page("Hi!\n  x")
    t = data.glyph_targets(page, 16)
    # token (0, 0) owns columns 0-1 of row 0 ("Hi"); its slots are row-major over its cells
    owned = data.slot_table(16)[0, 0]
    got = {int(cell): int(cls) for cell, cls in zip(owned, t[0, 0]) if cell >= 0}
    assert got[0] == ord("H") - 32 and got[1] == ord("i") - 32
    assert (t[data.slot_table(16) < 0] == -100).all()


@pytest.mark.parametrize("kind", data.KINDS + data.EXTRA_KINDS)
def test_sample_kinds_render_to_pages(corpus_dir, kind):
    corpus = data.Corpus(corpus_dir, "train")
    rng = random.Random(0)
    page, n_rows, got_kind = data.make_page(corpus, data.Stage("s", max_rows=5, min_rows=3), rng, kind)
    assert got_kind == kind and 3 <= n_rows <= 5
    assert len(page.text.split("\n")) <= n_rows
    pixels = np.asarray(page.image)
    codes = page.cell_codes()
    used = np.nonzero(codes.any(axis=1))[0]
    if len(used):  # the kept rows sit in one block, moved down by a multiple of 5 rows
        first = int(used[0])
        assert used[-1] < first + n_rows and (first % data.SHIFT_UNIT == 0 or page.lines[0] == "")
        top = round(pg.MARGIN_Y + (first + n_rows) * pg.CELL_H)
        assert (pixels[top:] == 255).all(), "rows below the kept block must be blank"


def test_crop_rows_shift_moves_pixels_and_codes_together():
    page = pg.render_plain_page("abc\ndef\nghi")
    moved = data.crop_rows(page, 2, shift=10)
    assert moved.text == "abc\ndef"
    assert (moved.cell_codes()[10, :3] == [ord("a"), ord("b"), ord("c")]).all()
    assert not moved.cell_codes()[:10].any() and not moved.cell_codes()[12:].any()
    dy = round(10 * pg.CELL_H)
    top = round(pg.MARGIN_Y + 2 * pg.CELL_H)
    assert (np.asarray(moved.image)[dy:dy + top] == np.asarray(page.image)[:top]).all()
    with pytest.raises(ValueError, match="multiple of 5"):
        data.crop_rows(page, 2, shift=3)


def test_random_text_is_seeded():
    a = data.random_chars(random.Random(5), 500)
    b = data.random_chars(random.Random(5), 500)
    assert a == b and all(len(line) <= pg.COLS for line in a.split("\n"))
    words = ["one", "two"]
    assert data.structured(random.Random(1), words, 300) == data.structured(random.Random(1), words, 300)


def test_symbols_pages_carry_listed_characters_the_font_draws(corpus_dir):
    corpus = data.Corpus(corpus_dir, "train")
    text = corpus.sample("symbols", random.Random(4), 2000)
    assert text == corpus.sample("symbols", random.Random(4), 2000)
    assert all(len(line) <= pg.COLS for line in text.split("\n"))
    page = pg.render_plain_page(text)
    cls = data.glyph_classes(page.cell_codes())
    assert not page.layout.undrawable and (cls == glyphs.OTHER).sum() == 0
    assert (cls >= glyphs.ASCII_CLASSES).sum() > 0.1 * (cls != 0).sum()  # well over a tenth of drawn cells
    assert set(text) - set(glyphs.EXTRA_CHARS) <= set(string.printable)
    with pytest.raises(ValueError, match="unknown text kind"):
        corpus.sample("klingon", random.Random(0))


@pytest.mark.parametrize("kind", ["chat", *data.SCRIPT_KINDS, *data.MEMORY_KINDS])
def test_memory_and_script_pages_draw_only_what_has_a_class(corpus_dir, kind):
    """The pages of the memory stage: every drawn cell has a class of its own (no box, no OTHER)."""
    corpus = data.Corpus(corpus_dir, "train")
    stage = data.Stage("full", pg.ROWS, pg.ROWS, mix=((kind, 1.0),))
    page, _, got = data.make_page(corpus, stage, random.Random(3), kind)
    assert got == kind and page.text.strip()
    cls = data.glyph_classes(page.cell_codes())
    assert (cls == glyphs.OTHER).sum() <= 2  # a corpus may hold the odd character no shipped font draws


def test_missing_corpus_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m ocr_model.data build"):
        data.Corpus(str(tmp_path), "train")
    with pytest.raises(ValueError, match="split"):
        data.Corpus(str(tmp_path), "test")


def test_page_pixels_per_tier():
    page = pg.render_plain_page("abc")
    for tier, size in ((n, t.side) for n, t in pg.TIERS.items()):
        px = data.page_pixels(page, tier)
        assert px.shape == (size, size) and px.dtype == np.uint8


def test_page_pixels_as_memory_stores_them():
    import random

    from optimem.memory import as_stored

    page = pg.render_plain_page("The access code for locker 7 is QX-4471-MB.\n" * 12)
    rng = random.Random(0)
    direct = data.page_pixels(page, "gist")
    assert len(np.unique(direct)) > 16 and np.array_equal(data.page_pixels(page, "gist", rng, 0.0), direct)
    seen = set()
    for _ in range(12):
        px = data.page_pixels(page, "gist", rng, stored=1.0)
        assert px.shape == (384, 384) and set(np.unique(px)) <= {17 * i for i in range(16)}  # 16 greys
        seen.add(px.tobytes())
    # faded through different subsets of small/tiny: several distinct images, one of them base -> gist directly
    straight = np.asarray(as_stored(as_stored(page.image, "base"), "gist"))
    assert len(seen) > 1 and straight.tobytes() in seen


def test_corpus_reads_xz_and_gzip_and_names_a_missing_file(corpus_dir, tmp_path):
    c = data.Corpus(corpus_dir, "heldout")
    assert c.texts["prose"].startswith("The quick brown fox") and c.texts["code"].startswith("def f(x):")
    with pytest.raises(FileNotFoundError, match=r"prose\.train\.txt\.xz is missing: build the corpus"):
        data.Corpus(str(tmp_path), "train")
