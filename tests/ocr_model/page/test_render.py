"""Tests of ocr_model.page.render (and geometry): the grid, determinism, capacity, text rules, the dense
conversation layout, the layout map (format 2 and format-1 stores) and split_decoded round trips."""

from __future__ import annotations

import hashlib
import math
import random
import re
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from ocr_model.page import (
    CELL_H,
    CELL_W,
    COLS,
    MARGIN_X,
    MARGIN_Y,
    PAGE_SIZE,
    ROWS,
    TIERS,
    Header,
    Layout,
    Page,
    Piece,
    Segment,
    Tier,
    Turn,
    cells_used,
    format_header,
    page_at_tier,
    parse_header,
    render_plain,
    render_plain_page,
    render_turns,
    split_decoded,
    tier,
)
from ocr_model.page import fonts as F
from ocr_model.page.fonts import REPLACEMENT

PROSE = (
    "The committee met on Tuesday to review the budget for the coming year. After a long discussion about "
    "travel costs, they agreed to cut the conference allowance by a third and to move the spring workshop "
    "online. Maria asked whether the savings would cover the new laptops; Tom said they would, if the vendor "
    "kept last year's prices. Nobody was sure about that, so they wrote to the vendor the same afternoon. "
    "A reply came back within an hour: prices would rise by four percent in March, but orders placed before "
    "the end of February would keep the old rate. The committee decided to order twelve machines at once. "
)
TS = 1_795_873_500.0                               # 2026-11-28 13:45 UTC


def cells_of(line: str) -> int:
    """Width of a rendered line in cells (East Asian wide characters take two)."""
    return sum(F.classify(c)[1] if c != REPLACEMENT else 1 for c in line)


def normalised(text: str) -> str:
    """What a perfect reading gives back for a text without tabs and without trailing spaces on its lines:
    line breaks become '\\n', control characters their escaped spelling, undrawable characters U+FFFD."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch if ch == "\n" else F.classify(ch)[0] for ch in text)


def visible(text: str) -> str:
    """normalised() and trailing spaces of every line removed (rows are right-stripped)."""
    return "\n".join(line.rstrip(" ") for line in normalised(text).split("\n"))


def read_back(pages: list[Page]) -> dict[int, str]:
    """Decode every page perfectly (page.text) and glue each turn's pieces back together."""
    out: dict[int, str] = {}
    for page in pages:
        for turn_id, piece in split_decoded(page.text, page.layout).items():
            out[turn_id] = out.get(turn_id, "") + piece
    return out


def text_pieces(page: Page, turn_id: int) -> list[Piece]:
    segs = {k for k, s in enumerate(page.layout.segments) if s.turn_id == turn_id}
    return [p for p in page.layout.pieces if p.segment in segs and p.kind == "text"]


def check_page_invariants(page: Page) -> None:
    assert page.image.mode == "L" and page.image.size == (PAGE_SIZE, PAGE_SIZE)
    assert len(page.lines) == ROWS
    codes = page.cell_codes()
    assert codes.shape == (ROWS, COLS) and codes.dtype == np.int32
    box_wide = {(b[0], b[1]) for b in page.layout.undrawable if unicodedata.east_asian_width(chr(b[2])) in "WF"}
    for r, line in enumerate(page.lines):
        assert line == line.rstrip(" ")
        # the cell codes spell exactly the line: each char, -1 after a wide one, then empty cells
        expect = []
        for ch in line:
            col = len(expect)
            expect.append(ord(ch))
            if (ch != REPLACEMENT and F.classify(ch)[1] == 2) or (ch == REPLACEMENT and (r, col) in box_wide):
                expect.append(-1)
        assert len(expect) <= COLS, f"row {r} overflows: {line!r}"
        assert codes[r, :len(expect)].tolist() == expect
        assert not codes[r, len(expect):].any()
    for r, c, cp in page.layout.undrawable:
        assert codes[r, c] == ord(REPLACEMENT)
    assert page.text == "\n".join(page.lines).rstrip("\n")
    # pieces: in reading order, inside the grid, never overlapping, headers spelled where the map says
    prev = (-1, 0)                                 # (row, first free column) after the previous piece
    for p in page.layout.pieces:
        assert 0 <= p.row < ROWS and 0 <= p.col and p.col + p.width <= COLS
        assert (p.row, p.col) >= prev
        prev = (p.row, p.col + p.width)
        seg = page.layout.segments[p.segment]
        assert seg.first_row <= p.row <= seg.last_row
        if p.kind in ("header", "cont"):
            head = page.lines[p.row][p.pos:p.pos + p.width]
            assert parse_header(head) == Header(seg.role, seg.turn_number, parse_header(head).time,
                                                p.kind == "cont")
            assert (p.kind == "cont") == (seg.continued and p is page.layout.pieces_of(p.segment)[0])
        else:
            assert p.kind == "text" and p.start <= p.end and seg.start <= p.start and p.end <= seg.end
    assert cells_used(page) == sum(cells_of(line) for line in page.lines)


# ------------------------------------------------------------------------------------------------ geometry

def test_geometry_constants():
    assert COLS * CELL_W + 2 * MARGIN_X == PAGE_SIZE
    assert math.isclose(ROWS * CELL_H + 2 * MARGIN_Y, PAGE_SIZE)
    # one 64 x 64 visual-token region at 1024 px is exactly 5 columns by 2.5 rows
    assert 5 * CELL_W == 64 and math.isclose(2.5 * CELL_H, 64)


def test_tier_table():
    assert list(TIERS) == ["large", "base", "small", "tiny", "gist"]      # sharpest first
    assert {n: t.side for n, t in TIERS.items()} == {"large": 1280, "base": 1024, "small": 640, "tiny": 512,
                                                     "gist": 384}
    for name, t in TIERS.items():
        assert isinstance(t, Tier) and t.name == name
        assert t.grid == t.side // 64 and t.tokens == t.grid ** 2
    assert TIERS["base"].tokens == 256 and TIERS["tiny"].tokens == 64 and TIERS["gist"].grid == 6
    assert tier("small") is TIERS["small"]
    for bad in ("huge", None, 1024):
        with pytest.raises(ValueError, match="choose one of"):
            tier(bad)  # type: ignore[arg-type]


def test_page_at_tier():
    page = render_plain_page(PROSE)
    for name, t in TIERS.items():
        img = page_at_tier(page.image, name)
        assert img.size == (t.side, t.side) and img.mode == "L"
    base = page_at_tier(page.image, "base")
    assert base.tobytes() == page.image.tobytes() and base is not page.image
    tiny = page_at_tier(page.image, "tiny")
    assert tiny.tobytes() == page.image.resize((512, 512), Image.Resampling.LANCZOS).tobytes()
    with pytest.raises(ValueError, match="choose one of"):
        page_at_tier(page.image, "huge")


def test_blank_page_is_white():
    page = render_plain_page("")
    assert page.text == "" and page.lines == ("",) * ROWS
    assert np.asarray(page.image).min() == 255
    assert not page.cell_codes().any()
    assert cells_used(page) == 0


@pytest.mark.parametrize("row,col", [(0, 0), (0, 74), (37, 0), (37, 74), (13, 42), (21, 3)])
def test_glyph_is_drawn_inside_its_cell(row, col):
    text = "\n" * row + " " * col + "M"
    page = render_plain_page(text)
    ink = 255 - np.asarray(page.image).astype(int)
    ys, xs = np.nonzero(ink > 40)
    x0, y0 = MARGIN_X + col * CELL_W, MARGIN_Y + row * CELL_H
    assert xs.min() >= x0 - 1 and xs.max() < x0 + CELL_W + 1
    assert ys.min() >= y0 and ys.max() < y0 + CELL_H
    codes = page.cell_codes()
    assert codes[row, col] == ord("M") and np.count_nonzero(codes) == 1 + col  # spaces before it count


def test_cell_codes_is_a_copy():
    page = render_plain_page("abc")
    codes = page.cell_codes()
    codes[0, 0] = 0
    assert page.cell_codes()[0, 0] == ord("a")


# ------------------------------------------------------------------------------------------------ determinism

def test_same_input_same_bytes():
    turns = [Turn("user", PROSE, timestamp=TS), Turn("assistant", "```python\nx = 1  # one\n```")]
    a = [p.image.tobytes() for p in render_turns(turns)]
    render_plain_page("ελληνικά кириллица 中文 한글 かな 😀 \x00\t")     # grows the glyph cache in between
    b = [p.image.tobytes() for p in render_turns(turns)]
    assert a == b


def test_same_bytes_in_a_fresh_process_with_another_glyph_order():
    code = (
        "import hashlib, sys\n"
        "from ocr_model.page import render_plain_page\n"
        "if sys.argv[1] == 'warm': render_plain_page('zyxwvutsrqponmlkjihgfedcba ZYX 987 文中 😀')\n"
        "print(hashlib.sha256(render_plain_page(sys.argv[2]).image.tobytes()).hexdigest())\n"
    )
    text = PROSE[:300] + " 中文 한국어 😀 ελληνικά"
    here = hashlib.sha256(render_plain_page(text).image.tobytes()).hexdigest()
    for mode in ("cold", "warm"):
        out = subprocess.run([sys.executable, "-c", code, mode, text], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == here


# ------------------------------------------------------------------------------------------------ capacity

def test_capacity_of_a_full_page_of_prose():
    page = render_plain_page(PROSE * 10)
    assert page.layout.segments[0].continues
    assert all(page.lines)                          # every row used
    assert 2500 <= len(page.text) <= 2850, len(page.text)
    assert cells_used(page) == sum(len(line) for line in page.lines) >= 0.9 * ROWS * COLS


def test_dense_conversation_packs_short_turns():
    turns = [Turn("user" if i % 2 == 0 else "assistant", f"message number {i} is short.") for i in range(60)]
    pages = render_turns(turns)
    # 60 turns of ~43 cells each share rows: far fewer rows than the 120 of one header row per turn
    used = sum(sum(1 for line in p.lines if line) for p in pages)
    assert used < 45, used
    assert read_back(pages) == {i + 1: t.text for i, t in enumerate(turns)}


def test_cells_used():
    page = render_plain_page("ab\n\n中文x\n  y")
    assert cells_used(page) == 2 + 0 + 5 + 3
    (page,) = render_turns([Turn("user", "hi")])
    assert page.text == "[user #1] hi" and cells_used(page) == len("[user #1] hi")


# ------------------------------------------------------------------------------------------------ text rules

def test_word_wrap_breaks_at_spaces_and_round_trips():
    text = PROSE * 3
    page = render_plain_page(text)
    for line in page.lines:
        assert cells_of(line) <= COLS
        assert not line.startswith(" ")            # single spaces are consumed by the break
    assert read_back([page])[0] == text.rstrip(" ")


def test_long_word_is_hard_wrapped():
    word = "x" * 200
    page = render_plain_page("ab " + word)
    assert page.lines[:4] == ("ab", "x" * 75, "x" * 75, "x" * 50)
    assert [p.wrap for p in page.layout.pieces[:4]] == ["space", "hard", "hard", "end"]
    assert read_back([page])[0] == "ab " + word


def test_indentation_and_blank_lines_survive():
    code = "def f(x):\n\n    if x:\n        return [\n            1,\n        ]\n    return None"
    (page,) = render_turns([Turn("assistant", code)])
    assert page.lines[0] == "[assistant #1] def f(x):"
    assert page.lines[1:7] == tuple(code.split("\n")[1:7])
    assert read_back([page]) == {1: code}


def test_multiple_spaces_at_a_soft_break_are_kept():
    text = "a" * 70 + "   " + "b" * 10
    page = render_plain_page(text)
    assert page.lines[:2] == ("a" * 70, "  " + "b" * 10)
    assert read_back([page])[0] == text


def test_trailing_spaces_are_the_one_normalisation():
    page = render_plain_page("abc   \ndef  ")
    assert page.lines[:2] == ("abc", "def")
    assert read_back([page])[0] == "abc\ndef"
    assert not page.cell_codes()[0, 3:].any()


def test_tabs_expand_to_multiples_of_four():
    page = render_plain_page("\tx\nab\ty\nabcd\tz")
    assert page.lines[:3] == ("    x", "ab  y", "abcd    z")


def test_tab_in_inline_text_expands_from_its_column():
    (page,) = render_turns([Turn("user", "a\tb")])
    assert page.lines[0] == "[user #1] a b"       # 'a' at column 10, the tab goes to column 12
    assert render_plain_page("a\tb").lines[0] == "a   b"


def test_line_endings():
    page = render_plain_page("a\r\nb\rc\nd")
    assert page.lines[:4] == ("a", "b", "c", "d")
    assert read_back([page])[0] == "a\nb\nc\nd"


def test_wide_char_never_straddles_the_row_end():
    page = render_plain_page("a" * 74 + "中文")
    assert page.lines[0] == "a" * 74 and page.lines[1] == "中文"
    assert page.cell_codes()[0, 74] == 0
    assert page.cell_codes()[1, :4].tolist() == [ord("中"), -1, ord("文"), -1]
    assert read_back([page])[0] == "a" * 74 + "中文"


def test_controls_are_escaped_and_reported():
    page = render_plain_page("a\x00b\x1b[0m\u200bc\x7f\ufe0f\u2028\x85")
    assert page.lines[0] == "a\\x00b\\x1b[0m\\u200bc\\x7f\\ufe0f\\u2028\\x85"
    assert [e[2] for e in page.layout.escaped] == [0, 0x1B, 0x200B, 0x7F, 0xFE0F, 0x2028, 0x85]
    assert [e[1] for e in page.layout.escaped][:2] == [1, 6]
    assert page.layout.undrawable == ()
    # escapes are grey, not black
    x0 = int(MARGIN_X + 1 * CELL_W)
    assert np.asarray(page.image)[26:52, x0:x0 + int(4 * CELL_W)].min() > 60


def test_undrawable_characters_become_boxes_and_are_listed():
    text = "x\ud800y\U000f0000z\u3400w"          # lone surrogate, private use, a Han char outside the cut (wide)
    page = render_plain_page(text)
    assert page.lines[0] == f"x{REPLACEMENT}y{REPLACEMENT}z{REPLACEMENT}w"
    assert page.layout.undrawable == ((0, 1, 0xD800), (0, 3, 0xF0000), (0, 5, 0x3400))
    assert page.cell_codes()[0, :8].tolist() == [ord("x"), 0xFFFD, ord("y"), 0xFFFD, ord("z"), 0xFFFD, -1,
                                                 ord("w")]
    check_page_invariants(page)


def test_cjk_hangul_kana_and_emoji_are_drawn_two_cells_wide():
    text = "中文ab한あ😀"
    page = render_plain_page(text)
    assert page.lines[0] == text and page.layout.undrawable == ()
    assert page.cell_codes()[0, :11].tolist() == [ord("中"), -1, ord("文"), -1, ord("a"), ord("b"), ord("한"),
                                                  -1, ord("あ"), -1, 0x1F600]
    ink = 255 - np.asarray(page.image).astype(int)
    for col in (0, 6, 8, 10):                     # real glyphs, not thin boxes
        x0 = int(MARGIN_X + col * CELL_W)
        assert ink[26:52, x0:x0 + 26].sum() > 255 * 40


def test_greek_cyrillic_and_combining_marks_are_drawn():
    text = "αβγ жзи e\u0301"
    page = render_plain_page(text)
    assert page.lines[0] == text and page.layout.undrawable == ()
    ink = 255 - np.asarray(page.image).astype(int)
    x0 = int(MARGIN_X + 9 * CELL_W)               # the combining acute has its own cell
    assert ink[26:52, x0:x0 + 13].sum() > 0


def test_rtl_text_is_kept_in_logical_order():
    text = "سلام abc"                             # Arabic letters drawn one cell each, in logical order
    page = render_plain_page(text)
    assert page.lines[0] == text and page.layout.undrawable == ()
    hebrew = render_plain_page("שלום abc")        # no shipped font draws Hebrew: boxes, still in order
    assert hebrew.lines[0] == REPLACEMENT * 4 + " abc"


def test_fenced_code_is_highlighted_by_weight_and_shade():
    body = "def f(x):\n    return x  # comment"
    fenced = render_plain_page(f"```python\n{body}\n```")
    plain = render_plain_page(f"```nosuchlanguage\n{body}\n```")
    assert fenced.lines[1:3] == plain.lines[1:3] == tuple(body.split("\n"))
    a, b = np.asarray(fenced.image), np.asarray(plain.image)
    row = lambda img, r: img[int(MARGIN_Y + r * CELL_H):int(MARGIN_Y + (r + 1) * CELL_H)]
    assert (255 - row(a, 1).astype(int)).sum() > (255 - row(b, 1).astype(int)).sum()   # 'def' bold
    x_comment = int(MARGIN_X + 14 * CELL_W)
    assert row(a, 2)[:, x_comment:].min() > 60          # the comment is grey, not black
    assert row(b, 2)[:, x_comment:].min() < 60
    assert row(a, 0).min() > 60 and row(a, 3).min() > 60  # fence lines are light grey


def test_headers_are_bold():
    (page,) = render_turns([Turn("user", "[user #1]")])
    assert page.lines[0] == "[user #1] [user #1]"
    ink = 255 - np.asarray(page.image).astype(int)
    head = ink[26:52, 32:int(32 + 9 * CELL_W)].sum()
    body = ink[26:52, int(32 + 10 * CELL_W):int(32 + 19 * CELL_W)].sum()
    assert head > body * 1.15


# ------------------------------------------------------------------------------------------------ headers

def test_headers_and_parse_header():
    assert format_header("user", 12, TS) == "[user #12 2026-11-28 13:45]"
    assert format_header("user", 12, continued=True) == "[user #12 cont.]"
    assert format_header("tool call/ü", 3) == "[tool_call__ #3]"
    assert format_header("", 3) == "[_ #3]"
    assert format_header("x" * 40, 1) == "[" + "x" * 24 + " #1]"
    assert parse_header("[user #12 2026-11-28 13:45]") == Header("user", 12, "2026-11-28 13:45", False)
    assert parse_header("  [assistant #7 cont.] ") == Header("assistant", 7, None, True)
    for not_header in ("user #12", "[user 12]", "[user #x]", "", "[user #1] and more", "[us er #1]"):
        assert parse_header(not_header) is None


# ------------------------------------------------------------------------------------------------ dense layout

def test_header_inline_then_text_on_the_same_row():
    turns = [Turn("user", "Hello, can you fix this?", timestamp=TS, id=100)]
    (page,) = render_turns(turns, first_turn_number=12)
    assert page.lines[0] == "[user #12 2026-11-28 13:45] Hello, can you fix this?"
    assert page.lines[1:] == ("",) * (ROWS - 1)
    (seg,) = page.layout.segments
    assert seg == Segment(100, 12, "user", 0, 0, False, False, 0, len(turns[0].text))
    head, body = page.layout.pieces
    assert (head.kind, head.row, head.col, head.width, head.pos) == ("header", 0, 0, 27, 0)
    assert (body.kind, body.row, body.col, body.width, body.pos, body.start, body.end, body.wrap) == \
        ("text", 0, 28, 24, 28, 0, 24, "end")


def test_next_header_follows_on_the_same_row_when_it_fits():
    turns = [Turn("user", "Hi there."), Turn("assistant", "Hello! How can I help?"), Turn("user", "")]
    (page,) = render_turns(turns)
    assert page.lines[0] == "[user #1] Hi there. [assistant #2] Hello! How can I help? [user #3]"
    assert [s.turn_id for s in page.layout.segments] == [1, 2, 3]
    assert [(p.kind, p.col) for p in page.layout.pieces] == [("header", 0), ("text", 10), ("header", 20),
                                                             ("text", 35), ("header", 58)]
    assert split_decoded(page.text, page.layout) == {1: "Hi there.", 2: "Hello! How can I help?", 3: ""}


def test_next_header_that_does_not_fit_starts_a_new_row():
    first = "w" * 60                                 # '[user #1] ' + 60 = 70 cells: '[assistant #2]' does not fit
    (page,) = render_turns([Turn("user", first), Turn("assistant", "ok")])
    assert page.lines[:2] == ("[user #1] " + first, "[assistant #2] ok")


def test_text_wraps_from_the_header_row_onto_full_rows():
    (page,) = render_turns([Turn("user", PROSE)])
    assert page.lines[0].startswith("[user #1] The committee")
    assert all(cells_of(line) <= COLS for line in page.lines)
    assert cells_of(page.lines[0]) > 60 and cells_of(page.lines[1]) > 65
    assert read_back([page]) == {1: PROSE.rstrip(" ")}


def test_a_long_first_word_starts_on_the_next_row():
    word = "y" * 70
    (page,) = render_turns([Turn("user", word + " z")])
    assert page.lines[:2] == ("[user #1]", word + " z")
    assert read_back([page]) == {1: word + " z"}


@pytest.mark.parametrize("first", ["    indented", "\tTabbed", "- item", "* item", "+ item", "• item", "1. item",
                                   "12) item", "| a | b |", "> quoted", "# Heading", "```", "~~~",
                                   "```python\nx = 1\n```"])
def test_own_line_first_line_starts_on_the_next_row(first):
    (page,) = render_turns([Turn("user", first), Turn("assistant", "ok")])
    assert page.lines[0] == "[user #1]"
    assert page.lines[1] == first.split("\n")[0].replace("\t", "    ")
    assert text_pieces(page, 1)[0].row == 1
    back = read_back([page])
    assert back[2] == "ok"
    if "\t" not in first:
        assert back[1] == first


@pytest.mark.parametrize("last", ["- item", "1. item", "    indented", "| a |", "> q", "# H",
                                  "```python\nx = 1\n```", "```\nunclosed code"])
def test_after_code_or_an_own_line_the_next_header_starts_a_new_row(last):
    text = "Look:\n" + last
    (page,) = render_turns([Turn("user", text), Turn("assistant", "ok")])
    rows = text.split("\n")
    assert page.lines[0] == "[user #1] Look:"
    assert page.lines[1:len(rows)] == tuple(rows[1:])
    assert page.lines[len(rows)] == "[assistant #2] ok"
    assert read_back([page]) == {1: text, 2: "ok"}


def test_after_plain_prose_the_next_header_stays_inline():
    text = "- item\nand prose after it"
    (page,) = render_turns([Turn("user", text), Turn("assistant", "ok")])
    assert page.lines[:3] == ("[user #1]", "- item", "and prose after it [assistant #2] ok")
    assert read_back([page]) == {1: text, 2: "ok"}


def test_empty_turns_are_a_header_only():
    turns = [Turn("user", "Hello", timestamp=TS, id=100), Turn("assistant", ""),
             Turn("assistant", "Sure:\n```python\ndef add(a, b):\n    return a + b  # sum\n```\nDone.", id=102)]
    (page,) = render_turns(turns, first_turn_number=12)
    assert page.lines[:6] == ("[user #12 2026-11-28 13:45] Hello [assistant #13] [assistant #14] Sure:",
                              "```python", "def add(a, b):", "    return a + b  # sum", "```", "Done.")
    segs = page.layout.segments
    assert [s.turn_id for s in segs] == [100, 13, 102]  # the turn number stands in for a missing id
    assert [(s.first_row, s.last_row, s.start, s.end) for s in segs] == [(0, 0, 0, 5), (0, 0, 0, 0),
                                                                         (0, 5, 0, len(turns[2].text))]
    assert split_decoded(page.text, page.layout) == {100: "Hello", 13: "", 102: turns[2].text}


def test_header_lookalike_text_does_not_confuse_split():
    turns = [Turn("user", "see [assistant #2] and [user #1 cont.]"), Turn("assistant", "[user #1] ok")]
    (page,) = render_turns(turns)
    assert split_decoded(page.text, page.layout) == {1: turns[0].text, 2: turns[1].text}


def test_pagination_with_continuation_markers():
    long_text = "\n".join(f"line {i}: " + PROSE[: (i * 37) % 300] for i in range(200))
    turns = [Turn("user", "short question"), Turn("assistant", long_text), Turn("user", "thanks")]
    pages = render_turns(turns)
    assert len(pages) > 3
    assert pages[0].lines[0].startswith("[user #1] short question [assistant #2] line 0:")
    for k, page in enumerate(pages):
        check_page_invariants(page)
        if k > 0:
            assert page.lines[0] == "[assistant #2 cont.]"     # the marker row, text from the next row
            assert page.layout.pieces[0].kind == "cont" and page.layout.pieces[1].row == 1
            assert page.layout.segments[0].continued
        if k < len(pages) - 1:
            assert page.layout.segments[-1].continues and page.lines[-1]
    assert not pages[-1].layout.segments[0].continues
    assert "[user #3] thanks" in pages[-1].text
    assert read_back(pages) == {1: "short question", 2: visible(long_text), 3: "thanks"}
    # the pieces' source offsets tile the turn text: each starts where the previous one ended
    rows = [p for page in pages for p in text_pieces(page, 2)]
    for prev, cur in zip(rows, rows[1:]):
        assert cur.start == prev.end + (1 if prev.wrap == "newline" else 0)
    assert rows[0].start == 0 and rows[-1].end == len(long_text) and rows[-1].wrap == "end"


def test_continued_segment_ends_with_its_row_separator():
    text = "\n".join(f"line {i}" for i in range(50))
    pages = render_turns([Turn("user", text)])
    assert len(pages) == 2
    first = split_decoded(pages[0].text, pages[0].layout)[1]
    assert first.endswith("\n") and first + split_decoded(pages[1].text, pages[1].layout)[1] == text
    assert pages[1].lines[:2] == ("[user #1 cont.]", f"line {first.count(chr(10))}")


def test_continuation_across_a_soft_wrap():
    pages = render_turns([Turn("user", PROSE * 6)])
    assert len(pages) == 2 and pages[1].lines[0] == "[user #1 cont.]"
    assert read_back(pages) == {1: (PROSE * 6).rstrip(" ")}


def test_header_is_not_left_alone_at_the_foot_of_a_page():
    filler = Turn("user", "\n".join("- x" for _ in range(ROWS - 2)))   # header + rows 1..36: one row left
    (p1,) = render_turns([filler])
    assert p1.lines[-1] == "" and p1.lines[-2] == "- x"
    pages = render_turns([filler, Turn("assistant", "- an own-line answer")])
    assert len(pages) == 2
    assert pages[0].lines[-1] == "" and pages[1].lines[:2] == ("[assistant #2]", "- an own-line answer")
    # a header with its text inline fits in the last row
    pages = render_turns([filler, Turn("assistant", "answer")])
    assert len(pages) == 1 and pages[0].lines[-1] == "[assistant #2] answer"


def test_max_pages():
    long = Turn("assistant", "\n".join(f"line {i} of the answer" for i in range(200)))
    turns = [Turn("user", "q"), long, Turn("user", "thanks")]
    full = render_turns(turns)
    assert len(full) == 6
    for k in (1, 2, 5, 6, 7):
        pages = render_turns(turns, max_pages=k)
        assert len(pages) == min(k, len(full))
        assert [p.image.tobytes() for p in pages] == [p.image.tobytes() for p in full[:k]]
        assert [p.layout for p in pages] == [p.layout for p in full[:k]]
    (one,) = render_turns(turns, max_pages=1)
    assert one.layout.segments[-1].turn_id == 2 and one.layout.segments[-1].continues
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match="max_pages"):
            render_turns(turns, max_pages=bad)  # type: ignore[arg-type]


def test_first_turn_number_and_ids():
    turns = [Turn("user", "a", id=7), Turn("assistant", "b")]
    (page,) = render_turns(turns, first_turn_number=0)
    assert page.lines[0] == "[user #0] a [assistant #1] b"
    assert split_decoded(page.text, page.layout) == {7: "a", 1: "b"}


def test_plain_pages_cover_the_text():
    text = "\n".join(PROSE[i % 50:] for i in range(40))
    pages = render_plain(text)
    assert len(pages) > 1
    assert all(not any(parse_header(line) for line in p.lines) for p in pages)   # no headers, no markers
    assert "".join(split_decoded(p.text, p.layout)[0] for p in pages) == visible(text)
    first = render_plain_page(text)
    assert first.image.tobytes() == pages[0].image.tobytes()
    gap = 1 if first.layout.pieces[-1].wrap == "newline" else 0     # a line break between the pages
    assert pages[1].layout.segments[0].start == first.layout.segments[0].end + gap
    assert render_plain("")[0].text == "" and len(render_plain("")) == 1


def test_one_megabyte_paginates():
    text = (PROSE + "\n") * (1_000_000 // (len(PROSE) + 1))
    page = render_plain_page(text)                  # cheap: only a page's worth of text is processed
    assert page.layout.segments[0].continues
    pages = render_turns([Turn("user", text)], max_pages=3)
    assert len(pages) == 3 and pages[-1].layout.segments[-1].continues


# ------------------------------------------------------------------------------------------------ layout map

def test_layout_json_round_trip():
    pages = render_turns([Turn("user", "x\x00\ud800 " * 400, id=5), Turn("assistant", "ok"),
                          Turn("user", "- list\n```py\ncode\n```")])
    assert len(pages) == 2 and pages[1].layout.segments[0].continued
    for page in pages:
        data = page.layout.to_json()
        assert '"v":2' in data
        back = Layout.from_json(data)
        assert back == page.layout
        assert split_decoded(page.text, back) == split_decoded(page.text, page.layout)
    for bad in ("{}", '{"v": 3}', "[]", '{"v": "2"}'):
        with pytest.raises(ValueError, match="re-render"):
            Layout.from_json(bad)


# Layouts of format 1, written by the renderer before the dense layout (optimem.render at commit fa50063):
# one row per header or text row; segments (turn_id, number, role, header_row, first_row, last_row, continued,
# continues, start, end), rows (segment, kind, start, end, wrap).
V1_TURNS = [Turn("user", "Hello, can you fix this?", timestamp=TS, id=100), Turn("assistant", ""),
            Turn("assistant", "Sure:\n```python\ndef add(a, b):\n    return a + b\n```\nDone. " + "word " * 20
                 + "x\x00y", id=102)]
V1_TEXT = ("[user #12 2026-11-28 13:45]\nHello, can you fix this?\n[assistant #13]\n[assistant #14]\nSure:\n"
           "```python\ndef add(a, b):\n    return a + b\n```\nDone. word word word word word word word word word "
           "word word word word word\nword word word word word word x\\x00y")
V1_JSON = ('{"v":1,"segments":[[100,12,"user",0,1,1,false,false,0,24],[13,13,"assistant",2,3,2,false,false,0,0],'
           '[102,14,"assistant",3,4,10,false,false,0,161]],"rows":[[0,"header",-1,-1,"end"],[0,"text",0,24,"end"],'
           '[1,"header",-1,-1,"end"],[2,"header",-1,-1,"end"],[2,"text",0,5,"newline"],[2,"text",6,15,"newline"],'
           '[2,"text",16,30,"newline"],[2,"text",31,47,"newline"],[2,"text",48,51,"newline"],'
           '[2,"text",52,128,"space"],[2,"text",128,161,"end"]],"undrawable":[],"escaped":[[10,31,0]]}')
V1_LONG = "\n".join(f"line {i} of the answer" for i in range(45))
V1_PAGES = [
    ("[user #1]\nq\n[assistant #2]\n" + "\n".join(f"line {i} of the answer" for i in range(35)),
     '{"v":1,"segments":[[1,1,"user",0,1,1,false,false,0,1],[2,2,"assistant",2,3,37,false,true,0,759]],'
     '"rows":[[0,"header",-1,-1,"end"],[0,"text",0,1,"end"],[1,"header",-1,-1,"end"],'
     + ",".join(f'[1,"text",{s},{e},"newline"]' for s, e in
                [(0, 20), (21, 41), (42, 62), (63, 83), (84, 104), (105, 125), (126, 146), (147, 167), (168, 188),
                 (189, 209)] + [(210 + 22 * i, 231 + 22 * i) for i in range(25)])
     + '],"undrawable":[],"escaped":[]}'),
    ("[assistant #2 cont.]\n" + "\n".join(f"line {i} of the answer" for i in range(35, 45)) + "\n[user #3]\nthanks",
     '{"v":1,"segments":[[2,2,"assistant",0,1,10,true,false,760,979],[3,3,"user",11,12,12,false,false,0,6]],'
     '"rows":[[0,"cont",-1,-1,"end"],'
     + ",".join(f'[0,"text",{760 + 22 * i},{781 + 22 * i},"newline"]' for i in range(9))
     + ',[0,"text",958,979,"end"],[1,"header",-1,-1,"end"],[1,"text",0,6,"end"]],"undrawable":[],"escaped":[]}'),
]


def test_format_1_layout_still_splits():
    layout = Layout.from_json(V1_JSON)
    assert [s.turn_id for s in layout.segments] == [100, 13, 102]
    assert [(s.first_row, s.last_row) for s in layout.segments] == [(0, 1), (2, 2), (3, 10)]
    assert len(layout.pieces) == 11 and [p.row for p in layout.pieces] == list(range(11))
    assert layout.escaped == ((10, 31, 0),)
    assert split_decoded(V1_TEXT, layout) == {100: V1_TURNS[0].text, 13: "",
                                             102: V1_TURNS[2].text.replace("\x00", "\\x00")}


def test_format_1_layout_across_pages():
    assert len(V1_PAGES[0][0].split("\n")) == ROWS
    layouts = [Layout.from_json(j) for _, j in V1_PAGES]
    assert layouts[0].segments[1].continues and layouts[1].segments[0].continued
    back: dict[int, str] = {}
    for text, layout in zip([t for t, _ in V1_PAGES], layouts):
        for k, v in split_decoded(text, layout).items():
            back[k] = back.get(k, "") + v
    assert back == {1: "q", 2: V1_LONG, 3: "thanks"}
    # and a reader that adds a line inside turn 2 still finds turn 3
    noisy = V1_PAGES[1][0].replace("line 40 of the answer", "line 40 of the answer\nspurious")
    assert split_decoded(noisy, layouts[1])[3] == "thanks"


# ------------------------------------------------------------------------------------------------ imperfect readers

def _three_turn_page() -> tuple[Page, list[Turn]]:
    turns = [Turn("user", "Here is my list:\n- first\n- second\n- third"), Turn("assistant", "Thanks, noted."),
             Turn("user", "One more thing: " + PROSE[:200])]
    (page,) = render_turns(turns)
    return page, turns


def test_split_decoded_survives_an_extra_decoded_line():
    page, turns = _three_turn_page()
    noisy = page.text.replace("- second\n", "- second\nspurious line\n")
    got = split_decoded(noisy, page.layout)
    assert got[2] == turns[1].text and got[3] == turns[2].text
    assert "spurious line" in got[1]


def test_split_decoded_survives_a_dropped_line():
    page, turns = _three_turn_page()
    assert "- second" in page.lines
    noisy = page.text.replace("- second\n", "")
    got = split_decoded(noisy, page.layout)
    assert got[2] == turns[1].text and got[3] == turns[2].text
    assert got[1] == "Here is my list:\n- first\n- third"


def test_split_decoded_survives_a_missed_header():
    page, turns = _three_turn_page()
    noisy = page.text.replace("[assistant #2] ", "")
    got = split_decoded(noisy, page.layout)
    assert got[3] == turns[2].text and set(got) == {1, 2, 3}


def test_split_decoded_bad_arguments():
    page, _ = _three_turn_page()
    with pytest.raises(TypeError, match="text must be a str"):
        split_decoded(b"x", page.layout)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="layout"):
        split_decoded("x", page.layout.to_json())  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ round trips

def _random_conversation(rng: random.Random) -> list[str]:
    bits = list("abcdefghij klmnop  xyz0123.,;:()[]{}#=+-*/\\'\"αβγжзиé中文한あ😀") + [
        "\n", "\r\n", "\r", "\x00", "\u200b", "\ufe0f", "[user #1]", "[assistant #2 cont.]", "\n- item ", "\n1. x",
        "\n```python\n", "\n```\n", "\n    ind", "\n> q", "\n| t |", "\n# h", "x" * 90, "\ud800", "\U000f0000"]
    texts = []
    for _ in range(rng.randint(1, 7)):
        t = "".join(rng.choice(bits) for _ in range(rng.choice([0, 1, 3, 10, 40, 200, 1200])))
        parts = re.split(r"(\r\n|\r|\n)", t)             # no trailing spaces on a line (not drawn)
        t = "".join(p if i % 2 else p.rstrip(" ") for i, p in enumerate(parts))
        texts.append(t.rstrip("\r\n"))                   # see test_turn_ending_in_a_line_break_round_trips
    return texts


def test_perfect_reading_round_trips_random_conversations():
    continued = 0
    for seed in range(120):
        texts = _random_conversation(random.Random(seed))
        if any(" " * COLS in normalised(t) for t in texts):
            continue
        pages = render_turns([Turn("user" if i % 2 else "assistant", t) for i, t in enumerate(texts)])
        continued += sum(s.continued for p in pages for s in p.layout.segments)
        assert read_back(pages) == {i + 1: normalised(t) for i, t in enumerate(texts)}, seed
    assert continued > 10                        # many turns went on over a page break


@pytest.mark.parametrize("text", ["abc\n", "\n", "abc\r\n", "- item\nprose\n", "x " * 59 + "x\n"])
def test_turn_ending_in_a_line_break_round_trips(text):
    pages = render_turns([Turn("user", text), Turn("assistant", "next")])
    assert read_back(pages) == {1: normalised(text), 2: "next"}


def test_last_turn_ending_in_a_line_break_round_trips():
    for text in ("abc\n", "abc\n\n", "\n"):
        pages = render_turns([Turn("user", "q"), Turn("assistant", text)])
        assert read_back(pages) == {1: "q", 2: text}


any_char = st.one_of(
    st.characters(),                                                  # every category but surrogates
    st.integers(0xD800, 0xDFFF).map(chr),                             # lone surrogates
    st.sampled_from(list("\n\r\t   `~#[]-|>中文한글あ😀\u0301\u200d\u202e\x00\x85\u2028\ufe0f")),
)


@settings(database=None, max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(any_char, max_size=400), st.text(any_char, max_size=30))
def test_any_str_renders(text, role):
    pages = render_turns([Turn(role, text), Turn("user", text[:50]), Turn("assistant", "x")])
    for page in pages:
        check_page_invariants(page)
        decoded = split_decoded(page.text, page.layout)
        assert set(decoded) <= {1, 2, 3}
        for p in page.layout.pieces:
            if p.kind == "text":
                src = {1: text, 2: text[:50], 3: "x"}[page.layout.segments[p.segment].turn_id]
                assert 0 <= p.start <= p.end <= len(src)
    page = render_plain_page(text)
    check_page_invariants(page)
    for p in page.layout.pieces:
        assert 0 <= p.start <= p.end <= len(text)
    for _, _, cp in page.layout.undrawable:         # every undrawable code point really is in the text
        assert chr(cp) in text
    for _, _, cp in page.layout.escaped:
        assert chr(cp) in text


@settings(database=None, max_examples=25, deadline=None)
@given(st.text(any_char, max_size=600))
def test_split_decoded_never_raises_on_a_bad_reading(decoded):
    turns = [Turn("user", "one two"), Turn("assistant", "x " * 100), Turn("user", ""), Turn("user", "- a\n- b")]
    for page in render_turns(turns):
        for noisy in (decoded, page.text + decoded, decoded + page.text, page.text[: len(decoded)]):
            pieces = split_decoded(noisy, page.layout)
            assert set(pieces) == {s.turn_id for s in page.layout.segments}


def _drawable_as_is(text: str) -> str:
    """`text` without what the page normalises: tabs (drawn as spaces), trailing spaces of a line (not drawn)
    and a final line break (see test_turn_ending_in_a_line_break_round_trips)."""
    parts = re.split(r"(\r\n|\r|\n)", text.replace("\t", ""))
    return "".join(p if i % 2 else p.rstrip(" ") for i, p in enumerate(parts)).rstrip("\r\n")


@settings(database=None, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(any_char, max_size=300), min_size=1, max_size=4), st.integers(0, 6))
def test_perfect_reading_round_trips_any_unicode(texts, repeat):
    texts = [_drawable_as_is(t) for t in texts]
    texts.append(_drawable_as_is(" ".join(texts) * repeat))       # long enough to go on over pages at times
    for t in texts:
        assume(" " * COLS not in normalised(t))
    pages = render_turns([Turn("user" if i % 2 else "assistant", t) for i, t in enumerate(texts)])
    assert read_back(pages) == {i + 1: normalised(t) for i, t in enumerate(texts)}


line_text = st.lists(
    st.sampled_from(list("abcdefghij klmnop xyz0123.,;:()[]{}#=+-*/\\'\"αβγжзи中文한あ😀\x00"))
    | st.sampled_from(["[user #1]", "[assistant #2 cont.]", "- ", "1. ", "    ", "```python", "```", "> ", "|"]),
    max_size=120,
).map("".join).map(lambda s: s.rstrip(" "))
turn_text = st.lists(line_text, max_size=12).map("\n".join)


@settings(database=None, max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(turn_text, min_size=1, max_size=6))
def test_layout_map_round_trip(texts):
    # exact for any text without tabs, except for trailing spaces of a row (not drawn)
    for t in texts:
        assume(" " * COLS not in t)
    turns = [Turn("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    pages = render_turns(turns)
    assert read_back(pages) == {i + 1: normalised(t) for i, t in enumerate(texts)}


# ------------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("field,kwargs", [
    ("Turn.text", dict(role="user", text=b"bytes")),
    ("Turn.text", dict(role="user", text=None)),
    ("Turn.role", dict(role=None, text="x")),
    ("Turn.timestamp", dict(role="user", text="x", timestamp="yesterday")),
    ("Turn.timestamp", dict(role="user", text="x", timestamp=True)),
    ("Turn.id", dict(role="user", text="x", id="7")),
    ("Turn.metadata", dict(role="user", text="x", metadata=[1])),
])
def test_bad_turn_fields_name_the_field(field, kwargs):
    with pytest.raises(TypeError, match=field.replace(".", r"\.")):
        Turn(**kwargs)


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), 1e20])
def test_impossible_timestamp(ts):
    with pytest.raises(ValueError, match="timestamp"):
        Turn("user", "x", timestamp=ts)


def test_bad_arguments_to_the_renderers():
    for fn in (render_plain, render_plain_page):
        with pytest.raises(TypeError, match="text must be a str"):
            fn(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of Turn"):
        render_turns(Turn("user", "x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first_turn_number"):
        render_turns([Turn("user", "x")], first_turn_number=-1)
    with pytest.raises(TypeError, match="first_turn_number"):
        render_turns([Turn("user", "x")], first_turn_number=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"turns\[1\]"):
        render_turns([Turn("user", "x"), {"role": "user", "content": "y"}])  # type: ignore[list-item]
    assert render_turns([]) == []
