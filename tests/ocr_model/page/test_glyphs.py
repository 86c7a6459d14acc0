"""Tests of ocr_model.page.glyphs: the glyph class table, glyph_classes, cells_text, slot_table (numpy, no torch)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ocr_model.page import COLS, ROWS, TIERS, Turn, render_plain_page, render_turns
from ocr_model.page import fonts as F
from ocr_model.page import glyphs as G

# run s3's heads: blank, printable ASCII, OTHER, then these 189 characters, in this order (append-only table)
S3_EXTRA = (
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿŒœŠšŽžŸ"
    "¡¿«»°±×÷§¶©®™€£¥¢µ·¬¦¤¨¯´¸¹²³¼½¾ªº"
    "‘’‚“”„–—…•†‡‰′″‹›"
    "←↑→↓↔⇐⇒⇔"
    "─│┌┐└┘├┤┬┴┼═║╔╗╚╝╠╣╦╩╬"
    "≤≥≠≈∞√∑∫∂∆∇∈∧∨≡"
    "αβγδελμπσφωΔΣΩ"
    "✓✗★☆■□▪●○◆"
)

SCRIPTS = {
    "ascii": "Hello, world! {x: [1, 2.5e-3]} ~`@#$%^&*()_+|\\<>?/ 0123456789",
    "latin": "Ça va? Élève, naïve façade, Øresund, Łódź, Smørrebrød, ŝĉĝ, Việt Nam ơ ư đ, ß, œuvre",
    "greek": "Καλημέρα κόσμε, αβγδεζηθικλμνξοπρστυφχψω ΑΒΓΔ",
    "cyrillic": "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёё Її Ґґ",
    "cjk": "中文测试：简体与繁體，日本語の漢字。全角ＡＢＣ１２３、句読点。",
    "hangul": "한국어 텍스트입니다. 다람쥐 헌 쳇바퀴에 타고파",
    "kana": "ひらがな カタカナ ーッァ ゐゑ",
    "emoji": "😀 🎉 🚀 🐍 🍕 🤖 🧠 ✓ ★",
    "mixed": "a中b한c😀d\x00e\u200bf\ufe0fg\ud800h\U000f0000i\u3400j\tk",
}


def check_page(page) -> None:
    codes = page.cell_codes()
    cls = G.glyph_classes(codes)
    assert cls.shape == (ROWS, COLS) and cls.dtype == np.int64
    table = G.classes()
    for (r, c), code in np.ndenumerate(codes):
        k = cls[r, c]
        if code == 0 or code == ord(" "):
            assert k == 0
        elif code == -1:
            assert k == G.WIDE_RIGHT
        elif F.drawable(int(code)):
            assert table[k] == chr(code), (r, c, chr(code))          # its own class
        else:
            assert code == 0xFFFD and k == G.OTHER
    assert G.cells_text(cls) == page.text


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_every_drawn_character_has_its_own_class(script):
    page = render_plain_page((SCRIPTS[script] + "\n") * 3)
    if script not in ("mixed",):
        assert page.layout.undrawable == ()
    check_page(page)


def test_conversation_page_reads_back_exactly():
    turns = [Turn(role, text) for role, text in zip(["user", "assistant"] * 5, SCRIPTS.values())]
    pages = render_turns(turns)
    for page in pages:
        check_page(page)


def test_wide_right_halves():
    page = render_plain_page("中한あ😀x")
    cls = G.glyph_classes(page.cell_codes())
    assert cls[0, 1] == cls[0, 3] == cls[0, 5] == cls[0, 7] == G.WIDE_RIGHT
    assert [G.classes()[k] for k in cls[0, :9:2]] == list("中한あ😀x")
    assert G.cells_text(cls) == "中한あ😀x"


def test_undrawable_reads_as_replacement():
    for ch in ("\U000f0000", "\ud800", "\u3400", "\u0f00", "\ufffd"):
        assert not F.drawable(ord(ch))
        page = render_plain_page(f"a{ch}b")
        cls = G.glyph_classes(page.cell_codes())
        assert cls[0, 1] == G.OTHER
        assert G.cells_text(cls) == page.text
        assert G.cells_text(cls).startswith("a\ufffd")
    # code points the table does not know map to OTHER too
    assert G.glyph_classes(np.array([[0x10FFFF, 0x3400, 10 ** 7]])).tolist() == [[G.OTHER] * 3]


def test_s3_class_prefix():
    table = G.classes()
    assert G.ASCII_CLASSES == 96 and G.OTHER == 95
    assert G.EXTRA_CHARS == S3_EXTRA and len(S3_EXTRA) == 189
    assert G.S3_CLASSES == 285 and G.WIDE_RIGHT == 285
    assert table[0] == " " and table[95] == "\ufffd" and table[285] == ""
    assert list(table[1:95]) == [chr(c) for c in range(33, 127)]
    assert "".join(table[96:285]) == S3_EXTRA


def test_class_table_is_every_drawable_character_once():
    table = G.classes()
    assert G.n_classes() == len(table) > 17_000
    chars = [c for i, c in enumerate(table) if i not in (0, G.OTHER, G.WIDE_RIGHT)]
    assert len(set(chars)) == len(chars) and all(len(c) == 1 for c in chars)
    assert all(F.drawable(ord(c)) for c in chars)
    rest = [ord(c) for c in table[286:]]
    assert rest == sorted(rest)                                      # the tail is by code point
    regular, bold, cjk, emoji = F.covered()
    drawable = sorted(cp for cp in regular | bold | cjk | emoji if F.drawable(cp))
    assert len(drawable) == len(chars)
    cls = G.glyph_classes(np.array(drawable))
    assert [table[k] for k in cls] == [chr(cp) for cp in drawable]
    for ch in "中한あ😀ÉΩж":
        assert ch in table


def test_glyph_classes_of_codes():
    codes = np.array([[0, 32, 65, -1, 0xFFFD, ord("É")]])
    cls = G.glyph_classes(codes)
    assert cls.tolist() == [[0, 0, 33, G.WIDE_RIGHT, G.OTHER, 96 + S3_EXTRA.index("É")]]


@pytest.mark.parametrize("name", list(TIERS))
def test_slot_table_owns_every_cell_once(name):
    grid = TIERS[name].grid
    table = G.slot_table(grid)
    assert table.shape[:2] == (grid, grid)
    cells = table[table >= 0]
    assert sorted(cells.tolist()) == list(range(ROWS * COLS))
    # a cell belongs to the token whose square holds its centre
    span = 1024 / grid
    for i, j, s in zip(*np.nonzero(table >= 0)):
        r, c = divmod(int(table[i, j, s]), COLS)
        assert i * span <= 25.6 + (r + 0.5) * 25.6 < (i + 1) * span
        assert j * span <= 32 + (c + 0.5) * 12.8 < (j + 1) * span
    if name == "base":
        assert table.shape[2] == 15                                  # 3 rows x 5 columns at most


def test_importing_the_page_format_does_not_import_torch():
    code = ("import sys\n"
            "import ocr_model.page, ocr_model.page.glyphs as g, ocr_model.page.codec, ocr_model.page.fonts\n"
            "g.classes()\n"
            "ocr_model.page.render_turns([ocr_model.page.Turn('user', 'x 中 😀')])\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'optimem'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cell_slots_invert_the_slot_table():
    """cell_slots(g)[cell] is the one slot of slot_table(g) that owns the cell, at every grid."""
    import numpy as np

    from ocr_model.page import COLS, ROWS
    from ocr_model.page.glyphs import cell_slots, slot_table

    for g in (6, 8, 10, 16, 20):
        table = slot_table(g).reshape(-1)
        assert (table[cell_slots(g)] == np.arange(ROWS * COLS)).all()


def test_cells_text_spells_any_grid_as_joined_stripped_rows():
    # what a reader may produce: any class anywhere (a wide right half after a space, blank rows in between)
    rng = np.random.default_rng(3)
    table = G.classes()
    for _ in range(50):
        cls = rng.integers(0, G.n_classes(), size=(ROWS, COLS))
        cls[:, rng.integers(0, COLS):] = rng.choice([0, G.WIDE_RIGHT, 1])
        cls[rng.integers(0, ROWS):] = 0
        want = "\n".join("".join(table[k] for k in row).rstrip(" ") for row in cls).rstrip("\n")
        assert G.cells_text(cls) == want


def test_cells_texts_spells_a_batch_as_cells_text_each():
    # the batch speller (the reader's) against the page speller: trailing spaces, wide right halves and blank
    # cells before them, blank rows and whole blank pages, one page, none
    rng = np.random.default_rng(4)
    space = G.classes().index(" ")
    for B in (0, 1, 7):
        cls = rng.integers(0, G.n_classes(), size=(B, ROWS, COLS))
        for b in range(B):
            for r in rng.integers(0, ROWS, size=10):
                cls[b, r, rng.integers(0, COLS):] = rng.choice([0, space, G.WIDE_RIGHT])
            cls[b, rng.integers(0, ROWS):] = rng.choice([0, space])
        if B == 7:
            cls[3] = 0
            cls[5, :, :] = space
        got = G.cells_texts(cls)
        assert got == [G.cells_text(c) for c in cls]
        if B == 7:
            assert got[3] == got[5] == ""
