"""Tests of optimem.render: geometry, determinism, capacity, layout-map round trip, Unicode, bad input."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from optimem import render as R
from ocr_model.page import (
    CELL_H, CELL_W, COLS, MARGIN_X, MARGIN_Y, PAGE_SIZE, REPLACEMENT, ROWS, TIERS, Turn, cjk_font_available,
    format_header, page_at_tier, parse_header, render_plain, render_plain_page, render_turns, split_decoded,
)

PROSE = (
    "The committee met on Tuesday to review the budget for the coming year. After a long discussion about "
    "travel costs, they agreed to cut the conference allowance by a third and to move the spring workshop "
    "online. Maria asked whether the savings would cover the new laptops; Tom said they would, if the vendor "
    "kept last year's prices. Nobody was sure about that, so they wrote to the vendor the same afternoon. "
    "A reply came back within an hour: prices would rise by four percent in March, but orders placed before "
    "the end of February would keep the old rate. The committee decided to order twelve machines at once. "
)


def cells_of(line: str) -> int:
    """Width of a rendered line in cells (East Asian wide characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" and c != REPLACEMENT else 1 for c in line)


def visible(text: str) -> str:
    """What a perfect reading of an ASCII/Greek/Cyrillic text without tabs gives back: trailing spaces go."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip(" ") for line in text.split("\n"))


def read_back(pages: list[R.Page]) -> dict[int, str]:
    """Decode every page perfectly (page.text) and glue each turn's pieces back together."""
    out: dict[int, str] = {}
    for page in pages:
        for turn_id, piece in split_decoded(page.text, page.layout).items():
            out[turn_id] = out.get(turn_id, "") + piece
    return out


def check_page_invariants(page: R.Page) -> None:
    assert page.image.mode == "L" and page.image.size == (PAGE_SIZE, PAGE_SIZE)
    assert len(page.lines) == ROWS
    codes = page.cell_codes()
    assert codes.shape == (ROWS, COLS) and codes.dtype == np.int32
    for r, line in enumerate(page.lines):
        assert line == line.rstrip(" ")
        # the cell codes spell exactly the line: each char, -1 after a wide one, then empty cells
        expect = []
        box_wide = {(b[0], b[1]) for b in page.layout.undrawable
                    if unicodedata.east_asian_width(chr(b[2])) in "WF"}
        for ch in line:
            col = len(expect)
            expect.append(ord(ch))
            wide = unicodedata.east_asian_width(ch) in "WF" or (ch == REPLACEMENT and (r, col) in box_wide)
            if wide:
                expect.append(-1)
        assert len(expect) <= COLS, f"row {r} overflows: {line!r}"
        assert codes[r, :len(expect)].tolist() == expect
        assert not codes[r, len(expect):].any()
    for r, c, cp in page.layout.undrawable:
        assert codes[r, c] == ord(REPLACEMENT)
    assert page.text == "\n".join(page.lines).rstrip("\n")


# ------------------------------------------------------------------------------------------------ geometry

def test_geometry_constants():
    assert COLS * CELL_W + 2 * MARGIN_X == PAGE_SIZE
    assert math.isclose(ROWS * CELL_H + 2 * MARGIN_Y, PAGE_SIZE)
    # one 64 x 64 visual-token region at 1024 px is exactly 5 columns by 2.5 rows
    assert 5 * CELL_W == 64 and math.isclose(2.5 * CELL_H, 64)
    assert TIERS == {"large": 1280, "base": 1024, "small": 640, "tiny": 512, "gist": 384}


def test_blank_page_is_white():
    page = render_plain_page("")
    assert page.text == "" and page.lines == ("",) * ROWS
    assert np.asarray(page.image).min() == 255
    assert not page.cell_codes().any()


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
    turns = [Turn("user", PROSE, timestamp=1_700_000_000.0), Turn("assistant", "```python\nx = 1  # one\n```")]
    a = [p.image.tobytes() for p in render_turns(turns)]
    render_plain_page("ελληνικά кириллица 中文 \x00\t")     # grows the glyph cache in between
    b = [p.image.tobytes() for p in render_turns(turns)]
    assert a == b


def test_same_bytes_in_a_fresh_process_with_another_glyph_order():
    code = (
        "import hashlib, sys\n"
        "from ocr_model.page import render_plain_page\n"
        "if sys.argv[1] == 'warm': render_plain_page('zyxwvutsrqponmlkjihgfedcba ZYX 987')\n"
        "print(hashlib.sha256(render_plain_page(sys.argv[2]).image.tobytes()).hexdigest())\n"
    )
    text = PROSE[:400]
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


# ------------------------------------------------------------------------------------------------ wrapping

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
    assert [r.wrap for r in page.layout.rows[:4]] == ["space", "hard", "hard", "end"]
    assert read_back([page])[0] == "ab " + word


def test_indentation_and_blank_lines_survive():
    code = "def f(x):\n\n    if x:\n        return [\n            1,\n        ]\n    return None\n"
    pages = render_turns([Turn("assistant", code)])
    assert pages[0].lines[1:8] == tuple(code.split("\n")[:7])
    assert read_back(pages) == {1: code}


def test_multiple_spaces_at_a_soft_break_are_kept():
    text = "a" * 70 + "   " + "b" * 10
    page = render_plain_page(text)
    assert page.lines[:2] == ("a" * 70, "  " + "b" * 10)
    assert read_back([page])[0] == text


def test_tabs_expand_to_multiples_of_four():
    page = render_plain_page("\tx\nab\ty\nabcd\tz")
    assert page.lines[:3] == ("    x", "ab  y", "abcd    z")


def test_line_endings():
    page = render_plain_page("a\r\nb\rc\nd")
    assert page.lines[:4] == ("a", "b", "c", "d")


def test_wide_char_never_straddles_the_row_end():
    page = render_plain_page("a" * 74 + "中文")
    assert page.lines[0] == "a" * 74
    assert page.lines[1] == ("中文" if cjk_font_available() else REPLACEMENT * 2)
    assert page.cell_codes()[0, 74] == 0
    assert page.cell_codes()[1, :4].tolist() == [page.cell_codes()[1, 0], -1, page.cell_codes()[1, 2], -1]


# ------------------------------------------------------------------------------------------------ turns, headers

def test_headers_and_parse_header():
    ts = 1_795_873_500.0                           # 2026-11-28 13:45 UTC
    assert format_header("user", 12, ts) == "[user #12 2026-11-28 13:45]"
    assert format_header("user", 12, continued=True) == "[user #12 cont.]"
    assert format_header("tool call/ü", 3) == "[tool_call__ #3]"
    assert parse_header("[user #12 2026-11-28 13:45]") == R.Header("user", 12, "2026-11-28 13:45", False)
    assert parse_header("  [assistant #7 cont.] ") == R.Header("assistant", 7, None, True)
    for not_header in ("user #12", "[user 12]", "[user #x]", "", "[user #1] and more"):
        assert parse_header(not_header) is None


def test_turn_layout_and_round_trip():
    turns = [Turn("user", "Hello, can you fix this?", timestamp=1_795_873_500.0, id=100),
             Turn("assistant", ""),
             Turn("assistant", "Sure:\n```python\ndef add(a, b):\n    return a + b  # sum\n```\nDone.", id=102)]
    (page,) = render_turns(turns, first_turn_number=12)
    assert page.lines[0] == "[user #12 2026-11-28 13:45]"
    assert page.lines[2] == "[assistant #13]"          # empty text: header only
    assert page.lines[3] == "[assistant #14]"
    segs = page.layout.segments
    assert [s.turn_id for s in segs] == [100, 13, 102]  # the turn number stands in for a missing id
    assert [(s.header_row, s.first_row, s.last_row) for s in segs] == [(0, 1, 1), (2, 3, 2), (3, 4, 9)]
    assert split_decoded(page.text, page.layout) == {100: turns[0].text, 13: "", 102: turns[2].text}


def test_pagination_with_continuation_markers():
    long_text = "\n".join(f"line {i}: " + PROSE[: (i * 37) % 300] for i in range(200))
    turns = [Turn("user", "short question"), Turn("assistant", long_text), Turn("user", "thanks")]
    pages = render_turns(turns)
    assert len(pages) > 3
    for k, page in enumerate(pages):
        check_page_invariants(page)
        if k > 0:
            assert parse_header(page.lines[0]) == R.Header("assistant", 2, None, True)
            assert page.layout.segments[0].continued
    assert pages[0].layout.segments[-1].continues and not pages[-1].layout.segments[0].continues
    assert read_back(pages) == {1: "short question", 2: visible(long_text), 3: "thanks"}
    # the rows' source offsets tile the turn text: each row starts where the previous one ended
    rows = [r for p in pages for r in p.layout.rows
            if r.kind == "text" and p.layout.segments[r.segment].turn_id == 2]
    for prev, cur in zip(rows, rows[1:]):
        assert cur.start == prev.end + (1 if prev.wrap == "newline" else 0)


def test_header_is_not_left_alone_at_the_foot_of_a_page():
    filler = Turn("user", "\n".join("x" for _ in range(ROWS - 2)))   # header + 36 rows: one row left
    pages = render_turns([filler, Turn("assistant", "answer")])
    assert len(pages) == 2
    assert pages[0].lines[-1] == "" and pages[1].lines[:2] == ("[assistant #2]", "answer")


def test_plain_pages_cover_the_text():
    text = "\n".join(PROSE[i % 50:] for i in range(40))
    pages = render_plain(text)
    assert len(pages) > 1
    assert "".join(split_decoded(p.text, p.layout)[0] for p in pages) == visible(text)
    first = render_plain_page(text)
    assert first.image.tobytes() == pages[0].image.tobytes()
    gap = 1 if first.layout.rows[-1].wrap == "newline" else 0     # a line break between the pages
    assert pages[1].layout.segments[0].start == first.layout.segments[0].end + gap


def test_one_megabyte_paginates():
    text = (PROSE + "\n") * (1_000_000 // (len(PROSE) + 1))
    page = render_plain_page(text)                  # cheap: only a page's worth of text is processed
    assert page.layout.segments[0].continues
    pages = render_turns([Turn("user", text)])
    assert len(pages) > 300
    assert sum(len(split_decoded(p.text, p.layout).get(1, "")) for p in pages) == len(visible(text))


def test_layout_json_round_trip():
    pages = render_turns([Turn("user", "x\x00\ud800 " * 300, id=5), Turn("assistant", "ok")])
    for page in pages:
        assert R.Layout.from_json(page.layout.to_json()) == page.layout
    with pytest.raises(ValueError, match="re-render"):
        R.Layout.from_json("{}")


def test_split_decoded_survives_an_extra_decoded_line():
    turns = [Turn("user", "first turn"), Turn("assistant", "second turn\nwith two lines")]
    (page,) = render_turns(turns)
    noisy = page.text.replace("first turn", "first turn\nspurious line")
    assert split_decoded(noisy, page.layout)[2] == "second turn\nwith two lines"


def test_header_lookalike_text_does_not_confuse_split():
    turns = [Turn("user", "[assistant #2]\n[user #1]"), Turn("assistant", "ok")]
    (page,) = render_turns(turns)
    assert split_decoded(page.text, page.layout) == {1: "[assistant #2]\n[user #1]", 2: "ok"}


# ------------------------------------------------------------------------------------------------ code

def test_fenced_code_is_highlighted_by_weight_and_shade():
    body = "def f(x):\n    return x  # comment"
    fenced = render_plain_page(f"```python\n{body}\n```")
    plain = render_plain_page(f"```nosuchlanguage\n{body}\n```")
    assert fenced.lines[1:3] == plain.lines[1:3] == tuple(body.split("\n"))
    a, b = np.asarray(fenced.image), np.asarray(plain.image)
    row = lambda img, r: img[int(MARGIN_Y + r * CELL_H):int(MARGIN_Y + (r + 1) * CELL_H)]  # noqa: E731
    assert (255 - row(a, 1).astype(int)).sum() > (255 - row(b, 1).astype(int)).sum()   # 'def' bold
    x_comment = int(MARGIN_X + 14 * CELL_W)
    assert row(a, 2)[:, x_comment:].min() > 60          # the comment is grey, not black
    assert row(b, 2)[:, x_comment:].min() < 60


# ------------------------------------------------------------------------------------------------ Unicode

def test_cjk_takes_two_cells():
    page = render_plain_page("中文ab")
    assert page.lines[0] == ("中文ab" if cjk_font_available() else REPLACEMENT * 2 + "ab")
    assert page.cell_codes()[0, :6].tolist()[1::2] == [-1, -1, ord("b")]
    if cjk_font_available():
        assert page.layout.undrawable == ()
        ink = 255 - np.asarray(page.image)[26:52, 32:58].astype(int)
        assert ink.sum() > 255 * 40               # a real glyph, not a thin box
    else:
        assert page.layout.undrawable == ((0, 0, ord("中")), (0, 2, ord("文")))


def test_greek_cyrillic_and_combining_marks_are_drawn():
    text = "αβγ жзи e\u0301"
    page = render_plain_page(text)
    assert page.lines[0] == text and page.layout.undrawable == ()
    ink = 255 - np.asarray(page.image).astype(int)
    col = 9                                        # the combining acute has its own cell
    x0 = int(MARGIN_X + col * CELL_W)
    assert ink[26:52, x0:x0 + 13].sum() > 0


def test_controls_are_escaped_and_reported():
    page = render_plain_page("a\x00b\x1b[0m\u200bc\x7f")
    assert page.lines[0] == "a\\x00b\\x1b[0m\\u200bc\\x7f"
    assert [e[2] for e in page.layout.escaped] == [0, 0x1B, 0x200B, 0x7F]
    assert page.layout.undrawable == ()


def test_undrawable_characters_become_boxes_and_are_listed():
    text = "x\ud800y\U000f0000z\U0001f600"          # lone surrogate, private use, emoji (wide)
    page = render_plain_page(text)
    assert page.lines[0] == f"x{REPLACEMENT}y{REPLACEMENT}z{REPLACEMENT}"
    assert page.layout.undrawable == ((0, 1, 0xD800), (0, 3, 0xF0000), (0, 5, 0x1F600))
    assert page.cell_codes()[0, :7].tolist() == [ord("x"), 0xFFFD, ord("y"), 0xFFFD, ord("z"), 0xFFFD, -1]
    check_page_invariants(page)


def test_rtl_text_is_kept_in_logical_order():
    text = "שלום abc"
    page = render_plain_page(text)
    assert len(page.lines[0]) == len(text)
    assert page.lines[0].endswith("abc")


# ------------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("field,kwargs", [
    ("Turn.text", dict(role="user", text=b"bytes")),
    ("Turn.text", dict(role="user", text=None)),
    ("Turn.role", dict(role=None, text="x")),
    ("Turn.timestamp", dict(role="user", text="x", timestamp="yesterday")),
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


def test_non_str_to_plain_renderers():
    for fn in (render_plain, render_plain_page):
        with pytest.raises(TypeError, match="text must be a str"):
            fn(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of Turn"):
        render_turns(Turn("user", "x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first_turn_number"):
        render_turns([Turn("user", "x")], first_turn_number=-1)
    with pytest.raises(TypeError, match=r"turns\[1\]"):
        render_turns([Turn("user", "x"), {"role": "user", "content": "y"}])  # type: ignore[list-item]


any_char = st.one_of(
    st.characters(),                                                  # every category but surrogates
    st.integers(0xD800, 0xDFFF).map(chr),                             # lone surrogates
    st.sampled_from(list("\n\r\t   `~#[]中文한글😀\u0301\u200d\u202e\x00\x85\u2028")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(any_char, max_size=400), st.text(any_char, max_size=30))
def test_any_str_renders(text, role):
    pages = render_turns([Turn(role, text), Turn("user", text[:50])])
    for page in pages:
        check_page_invariants(page)
        decoded = split_decoded(page.text, page.layout)
        assert set(decoded) <= {1, 2}
    page = render_plain_page(text)
    check_page_invariants(page)
    # offsets stay inside the text and every undrawable code point really is in it
    for row in page.layout.rows:
        assert 0 <= row.start <= row.end <= len(text)
    for _, _, cp in page.layout.undrawable:
        assert chr(cp) in text


@settings(max_examples=40, deadline=None)
@given(st.text(any_char, max_size=600))
def test_split_decoded_never_raises_on_a_bad_reading(decoded):
    turns = [Turn("user", "one\ntwo"), Turn("assistant", "x " * 100), Turn("user", "")]
    for page in render_turns(turns):
        for noisy in (decoded, page.text + decoded, decoded + page.text, page.text[: len(decoded)]):
            pieces = split_decoded(noisy, page.layout)
            assert set(pieces) == {s.turn_id for s in page.layout.segments}


readable = st.lists(
    st.sampled_from(list("abcdefghij klmnop  xyz0123.,;:()[]{}#=+-*/\\'\"\n\rαβγжзи"))
    | st.sampled_from(["[user #1]", "[assistant #2 cont.]", "\n[user #2]\n", "```python\n", "```\n"]),
    max_size=1200,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(readable, min_size=1, max_size=4))
def test_layout_map_round_trip(texts):
    # exact for any text of drawable single-cell characters without tabs, except rows of only spaces
    for t in texts:
        assume(" " * COLS not in t.replace("\r", "\n"))
    turns = [Turn("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    pages = render_turns(turns)
    back = read_back(pages)
    assert back == {i + 1: visible(t) for i, t in enumerate(texts)}


# ------------------------------------------------------------------------------------------------ tiers, CLI

def test_tiers():
    page = render_plain_page(PROSE)
    for name, size in TIERS.items():
        img = page_at_tier(page.image, name)
        assert img.size == (size, size) and img.mode == "L"
    assert page_at_tier(page.image, "base").tobytes() == page.image.tobytes()
    tiny = page_at_tier(page.image, "tiny")
    assert tiny.tobytes() == page.image.resize((512, 512), Image.Resampling.LANCZOS).tobytes()
    with pytest.raises(ValueError, match="choose one of"):
        page_at_tier(page.image, "huge")


def test_cli_render(tmp_path):
    from optimem.cli import main

    conv = tmp_path / "conversation.jsonl"
    msgs = [{"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": [{"type": "text", "text": "4"}]}]
    conv.write_text("\n".join(json.dumps(m) for m in msgs) + "\n", encoding="utf-8")
    assert main(["render", str(conv), "--out", str(tmp_path / "out"), "--tier", "tiny", "--text"]) == 0
    with Image.open(tmp_path / "out" / "page_0001.png") as img:
        assert img.size == (512, 512)
    text = (tmp_path / "out" / "page_0001.txt").read_text(encoding="utf-8")
    assert text == "[user #1]\nWhat is 2+2?\n[assistant #2]\n4\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"role": "user"}\n', encoding="utf-8")
    assert main(["render", str(bad), "--out", str(tmp_path / "o2")]) == 2
