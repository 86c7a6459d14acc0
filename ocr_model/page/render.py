"""Turns -> page images on the fixed monospace grid, plus the layout map that cuts a decoded page back into turns.

The optical model is trained on exactly these pixels (geometry.py has the grid, fonts.py the fonts), so
everything here is part of the model's contract: change a drawing rule and every checkpoint must be retrained.

Conversation pages are dense, like a transcript: each turn starts with its header inline, in bold,
'[user #12 2026-11-28 13:45]', then one space and the turn's first line on the same row. The next turn's
header follows on the row where the previous turn ended, after one space, when it fits. Lines that keep their
own row start a new row: a turn's text starts on the row after its header when its first line is indented, a
list item ('- ', '* ', '1. '), a table row ('|'), a quote ('>'), a heading ('#') or a code fence, and the next
header starts a new row after such a line or after code. Text rules (each input character maps to whole
cells, so `Page.lines` is exactly what was drawn):
- '\\n', '\\r\\n' and a lone '\\r' end a line; a tab advances to the next multiple of TAB_SIZE columns.
- Characters of East Asian Width W or F take two cells; every other character, combining marks included,
  takes one cell (no shaping, no bidi reordering: right-to-left text is drawn in logical order).
- Control and format characters and the emoji variation selectors are drawn escaped in grey, Python style
  ('\\x00', '\\u200b', '\\ufe0f'); a character no font covers is drawn as a replacement box and appears as
  U+FFFD in `lines` (the layout map lists what it was).
- Lines are word-wrapped at spaces (the space at a soft break is consumed), words longer than a row are cut.
- Trailing spaces of a row are not drawn (rows are right-stripped): the one normalisation of the page.
- Fenced code blocks (``` or ~~~) are highlighted with Pygments, in grayscale only: keywords and defined
  names bold, strings and numbers dark grey, comments and the fence lines light grey.

The layout map (`Layout`) lists every piece of every row: which turn it belongs to, where it starts (cell
column and index into the row's text) and which part of the turn's text it shows, so `split_decoded` cuts a
reading back into exact turn texts and a turn's cells can be blanked without touching its neighbours.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from . import fonts as F
from .geometry import COLS, MARGIN_X, MARGIN_Y, CELL_H, CELL_W, PAGE_SIZE, ROWS, TAB_SIZE

__all__ = [
    "Turn", "Page", "Layout", "Segment", "Piece", "Header",
    "render_turns", "render_plain", "render_plain_page", "split_decoded", "parse_header", "format_header",
    "cells_used", "WRAP_NEWLINE", "WRAP_SPACE", "WRAP_HARD", "WRAP_END",
]

REPLACEMENT = F.REPLACEMENT

# rounded top-left pixel of every column and row; Python's round() never meets a .5 here (steps of 0.2 px)
X0 = [math.floor(MARGIN_X + c * CELL_W + 0.5) for c in range(COLS + 1)]
Y0 = [math.floor(MARGIN_Y + r * CELL_H + 0.5) for r in range(ROWS + 1)]

# how a text piece connects to the next piece of the same text
WRAP_NEWLINE, WRAP_SPACE, WRAP_HARD, WRAP_END = "newline", "space", "hard", "end"
_JOIN = {WRAP_NEWLINE: "\n", WRAP_SPACE: " ", WRAP_HARD: "", WRAP_END: ""}


# ---------------------------------------------------------------------------------------------------------
# public types

@dataclass(frozen=True)
class Turn:
    """One conversation turn. `text` may be any str (empty, huge, control characters, lone surrogates)."""

    role: str
    text: str
    timestamp: float | None = None        # seconds since the Unix epoch; shown in the header in UTC
    id: int | None = None                 # stable id; the layout map keys turns by it (by turn number if None)
    metadata: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, str):
            raise TypeError(f"Turn.role must be a str such as 'user', got {type(self.role).__name__}")
        if not isinstance(self.text, str):
            raise TypeError(f"Turn.text must be a str, got {type(self.text).__name__}; "
                            "convert the content to text (e.g. json.dumps) before making a Turn")
        ts = self.timestamp
        if ts is not None:
            if isinstance(ts, bool) or not isinstance(ts, (int, float)):
                raise TypeError(f"Turn.timestamp must be seconds since the epoch (float) or None, "
                                f"got {type(ts).__name__}")
            if not math.isfinite(ts) or not -62_135_596_800 <= ts < 253_402_300_800:
                raise ValueError(f"Turn.timestamp {ts!r} is not a time in years 1..9999; pass seconds since "
                                 "the Unix epoch, e.g. time.time(), or None")
        if self.id is not None and (isinstance(self.id, bool) or not isinstance(self.id, int)):
            raise TypeError(f"Turn.id must be an int or None, got {type(self.id).__name__}")
        if self.metadata is not None and not isinstance(self.metadata, Mapping):
            raise TypeError(f"Turn.metadata must be a mapping or None, got {type(self.metadata).__name__}")


@dataclass(frozen=True)
class Segment:
    """The part of one turn (or of the plain text) shown on a page: text[start:end] of the turn.

    first_row..last_row are the rows it occupies, its header included."""

    turn_id: int            # Turn.id, or the turn number when the turn has no id; 0 in plain mode
    turn_number: int        # the number printed in the header; 0 in plain mode
    role: str               # the role as printed in the header; "" in plain mode
    first_row: int
    last_row: int
    continued: bool         # the turn began on an earlier page (the header is a "cont." marker)
    continues: bool         # the turn goes on to the next page
    start: int
    end: int


@dataclass(frozen=True)
class Piece:
    """A run of cells on one row that belongs to one segment: its header, or one row's share of its text."""

    segment: int            # index into Layout.segments
    kind: str               # "header" | "cont" | "text"
    row: int
    col: int                # first cell
    width: int              # cells covered (a text piece's trailing spaces included)
    pos: int                # index into Page.lines[row] of the piece's first character
    start: int              # text pieces: turn-text offsets [start, end) covered (incl. a consumed break
    end: int                # space); headers: -1, -1
    wrap: str               # text pieces: how it joins the segment's next text piece (WRAP_*); headers: ""


@dataclass(frozen=True)
class Layout:
    """Which turn occupies which cells: the pieces of every row, in reading order."""

    segments: tuple[Segment, ...]
    pieces: tuple[Piece, ...]
    undrawable: tuple[tuple[int, int, int], ...] = ()   # (row, col, codepoint) drawn as a replacement box
    escaped: tuple[tuple[int, int, int], ...] = ()      # (row, col, codepoint) of a character drawn escaped

    def rows_of(self, turn_ids) -> list[int]:
        """The rows that hold any part (header included) of these turns, ascending: what a reader must read
        to cut them out (whole rows: a row it shares with another turn is read whole)."""
        ids = set(turn_ids)
        return sorted({r for s in self.segments if s.turn_id in ids for r in range(s.first_row, s.last_row + 1)})

    def spans_of(self, turn_ids) -> list[tuple[int, int, int]]:
        """(row, first col, end col) of every piece (header included) of these turns, in reading order: the
        cells a reader must read to cut them out, and no cell of another turn."""
        ids = set(turn_ids)
        return [(p.row, p.col, p.col + p.width) for p in self.pieces if self.segments[p.segment].turn_id in ids]

    def to_json(self) -> str:
        """Compact JSON of the whole map (for storing next to a page); Layout.from_json reads it back."""
        return json.dumps({"v": 2, "segments": [dataclasses.astuple(s) for s in self.segments],
                           "pieces": [dataclasses.astuple(p) for p in self.pieces],
                           "undrawable": self.undrawable, "escaped": self.escaped}, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str) -> Layout:
        """Read a map written by to_json; also the row-per-header maps of format 1 (stores from before v2)."""
        d = json.loads(data)
        if not isinstance(d, dict) or d.get("v") not in (1, 2):
            raise ValueError("not a layout written by Layout.to_json (format version 1 or 2); re-render the page")
        und, esc = tuple(tuple(u) for u in d["undrawable"]), tuple(tuple(e) for e in d["escaped"])
        if d["v"] == 2:
            return cls(tuple(Segment(*s) for s in d["segments"]), tuple(Piece(*p) for p in d["pieces"]), und, esc)
        # format 1: one row per header or text row; segments (turn_id, number, role, header_row, first_row,
        # last_row, continued, continues, start, end); rows (segment, kind, start, end, wrap)
        segs = tuple(Segment(s[0], s[1], s[2], s[3] if s[3] is not None else s[4], max(s[5], s[3] or 0),
                             s[6], s[7], s[8], s[9]) for s in d["segments"])
        pieces = tuple(Piece(r[0], r[1], i, 0, COLS, 0, r[2], r[3], r[4] if r[1] == "text" else "")
                       for i, r in enumerate(d["rows"]))
        return cls(segs, pieces, und, esc)

    def pieces_of(self, segment: int) -> list[Piece]:
        return [p for p in self.pieces if p.segment == segment]


@dataclass(frozen=True, eq=False)
class Page:
    """One rendered page: the 1024 x 1024 grayscale image and exactly what is drawn on it."""

    image: Image.Image
    lines: tuple[str, ...]     # ROWS strings, each the characters drawn on that row, right-stripped of ' '
    layout: Layout
    _codes: np.ndarray = field(repr=False)

    @property
    def text(self) -> str:
        """What a perfect reader decodes: the lines joined by newlines, trailing empty lines removed."""
        return "\n".join(self.lines).rstrip("\n")

    def cell_codes(self) -> np.ndarray:
        """int32 (ROWS, COLS): the codepoint drawn in each cell, 0 if empty, -1 for a wide char's right half."""
        return self._codes.copy()


@dataclass(frozen=True)
class Header:
    role: str
    number: int
    time: str | None     # "YYYY-MM-DD HH:MM" (UTC) or None
    continued: bool


def cells_used(page: Page) -> int:
    """Cells of the page that carry text: from each row's first cell to its last drawn character."""
    return int(sum(len(line) + sum(1 for ch in line if F.classify(ch)[1] == 2) for line in page.lines))


# ---------------------------------------------------------------------------------------------------------
# text -> rows of cells

# a cell: (display char, width, style, source offset, flag) where flag is the original codepoint of a
# character drawn as a replacement box, -1 - codepoint on the first cell of an escape, else 0
_Cell = tuple
_SPACE: _Cell = (" ", 1, F.TEXT, -1, 0)

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*$")
_OWN_LINE = re.compile(r"[ \t]|[-*+•] |\d{1,3}[.)] |[|>#]|```|~~~")   # lines that keep a row of their own


def _logical_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, line breaks excluded; '' gives one empty line."""
    lines = []
    pos = 0
    for m in _LINE_BREAK.finditer(text):
        lines.append((pos, m.start()))
        pos = m.end()
    lines.append((pos, len(text)))
    return lines


def _code_styles(text: str, lines: list[tuple[int, int]]) -> tuple[bytearray | None, set[int]]:
    """Per-character style for fenced code blocks (None when the text has no fence), and the indexes of the
    lines inside fences (fence lines included)."""
    if "```" not in text and "~~~" not in text:
        return None, set()
    styles = bytearray(len(text))
    code_lines: set[int] = set()
    i = 0
    while i < len(lines):
        s, e = lines[i]
        m = _FENCE_OPEN.match(text, s, e)
        if m is None or m.end() != e:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2)
        styles[s:e] = bytes([F.FAINT]) * (e - s)
        j = i + 1
        while j < len(lines):
            cm = _FENCE_CLOSE.match(text, lines[j][0], lines[j][1])
            if cm is not None and cm.end() == lines[j][1] and cm.group(1)[0] == fence[0] \
                    and len(cm.group(1)) >= len(fence):
                break
            j += 1
        if j > i + 1:
            body_start, body_end = lines[i + 1][0], lines[j - 1][1]
            _highlight(text, body_start, body_end, lang, styles)
        if j < len(lines):
            cs, ce = lines[j]
            styles[cs:ce] = bytes([F.FAINT]) * (ce - cs)
        code_lines.update(range(i, min(j, len(lines) - 1) + 1))
        i = j + 1
    return styles, code_lines


_lexers: dict[str, Any] = {}
_token_styles: dict[Any, int] = {}


def _token_style(ttype: Any) -> int:
    st = _token_styles.get(ttype)
    if st is None:
        from pygments import token as T
        if ttype in T.Comment:
            st = F.FAINT
        elif ttype in T.Keyword or ttype in T.Operator.Word or ttype in T.Name.Function \
                or ttype in T.Name.Class or ttype in T.Name.Decorator or ttype in T.Name.Builtin:
            st = F.BOLD
        elif ttype in T.Literal.String or ttype in T.Literal.Number:
            st = F.DIM
        else:
            st = F.TEXT
        _token_styles[ttype] = st
    return st


def _highlight(text: str, start: int, end: int, lang: str, styles: bytearray) -> None:
    """Fill styles[start:end] from Pygments; unknown language -> plain. Highlighting is decoration only."""
    if not lang:
        return
    lang = lang.lower()
    if lang not in _lexers:
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
        try:
            _lexers[lang] = get_lexer_by_name(lang, stripnl=False, stripall=False, ensurenl=False)
        except ClassNotFound:
            _lexers[lang] = None
    lexer = _lexers[lang]
    if lexer is None:
        return
    code = text[start:end]
    try:
        # the unprocessed stream keeps offsets into `code` exactly (no BOM strip, no newline rewrite)
        for index, ttype, value in lexer.get_tokens_unprocessed(code):
            st = _token_style(ttype)
            if st != F.TEXT and value:
                a = start + index
                b = min(a + len(value), end)
                styles[a:b] = bytes([st]) * (b - a)
    except Exception:       # a third-party lexer failing on odd input must not lose the text: draw it plain
        styles[start:end] = bytes(end - start)


def _line_cells(text: str, start: int, end: int, styles: bytearray | None, col: int = 0) -> list[_Cell]:
    """The cells of text[start:end] drawn from column `col` (tabs advance to multiples of TAB_SIZE)."""
    cells: list[_Cell] = []
    for i in range(start, end):
        ch = text[i]
        st = styles[i] if styles is not None else F.TEXT
        if ch == "\t":
            n = TAB_SIZE - col % TAB_SIZE
            cells.extend([(" ", 1, st, i, 0)] * n)
            col += n
            continue
        disp, w, kind = F.classify(ch)
        if kind == F.ESCAPE:
            cells.append((disp[0], 1, F.FAINT, i, -1 - ord(ch)))
            for d in disp[1:]:
                cells.append((d, 1, F.FAINT, i, 0))
            col += len(disp)
        elif kind == F.BOX:
            cells.append((disp, w, st, i, 0 if ch == REPLACEMENT else ord(ch)))
            col += w
        else:
            cells.append((disp, w, st, i, 0))
            col += w
    return cells


@dataclass
class _TextRow:
    cells: list
    start: int
    end: int
    wrap: str


def _wrap(text: str, cells: list[_Cell], line_start: int, line_end: int, width: int) -> list[_TextRow]:
    """Word-wrap one logical line into rows: the first at most `width` cells, the others at most COLS."""
    n = len(cells)
    rows: list[_TextRow] = []
    i = 0
    room = width
    while True:
        col, j = 0, i
        while j < n and col + cells[j][1] <= room:
            col += cells[j][1]
            j += 1
        start = cells[i][3] if i < n else line_start
        if j == n:
            rows.append(_TextRow(cells[i:n], start, line_end, WRAP_NEWLINE))
            return rows
        # break at the first space of the last space run that starts after a non-space, so the row never
        # ends in a space (rows are right-stripped) and exactly one space is consumed by the break
        k = j
        while k > i and not (cells[k][0] == " " and text[cells[k][3]] == " " and cells[k - 1][0] != " "):
            k -= 1
        if k > i:
            nxt = k + 1
            if nxt == n:
                rows.append(_TextRow(cells[i:k], start, line_end, WRAP_NEWLINE))
                return rows
            rows.append(_TextRow(cells[i:k], start, cells[nxt][3], WRAP_SPACE))
            i = nxt
        else:
            rows.append(_TextRow(cells[i:j], start, cells[j][3], WRAP_HARD))
            i = j
        room = COLS


def _first_word_cells(cells: list[_Cell]) -> int:
    n = 0
    for c in cells:
        if c[0] == " ":
            break
        n += c[1]
    return n


@dataclass
class _Text:
    """A turn's text cut into rows; `lead` is the room its first row may use next to the header."""
    rows: list[_TextRow]
    inline: bool          # the first row sits on the header's row
    last_own_line: bool   # the last line is code or keeps its own row: the next header starts a new row


def _layout_text(text: str, lead: int | None, *, limit_rows: int | None = None,
                 total_len: int | None = None) -> _Text:
    """All rows of a text. With `lead` (cells left on the header's row), the first line starts there unless
    it keeps its own row or its first word does not fit. Stops after limit_rows rows (a cut prefix of a
    text of length total_len)."""
    if not text:
        return _Text([], False, False)
    lines = _logical_lines(text)
    styles, code_lines = _code_styles(text, lines)
    s0, e0 = lines[0]
    inline = lead is not None and lead > 0 and 0 not in code_lines and not _OWN_LINE.match(text, s0, e0)
    rows: list[_TextRow] = []
    for n, (s, e) in enumerate(lines):
        width = COLS
        if n == 0 and inline:
            cells = _line_cells(text, s, e, styles, col=COLS - lead)
            if 0 < _first_word_cells(cells) <= lead:
                width = lead
            else:
                inline = False
                cells = _line_cells(text, s, e, styles)
        else:
            cells = _line_cells(text, s, e, styles)
        rows.extend(_wrap(text, cells, s, e, width))
        if limit_rows is not None and len(rows) >= limit_rows:
            del rows[limit_rows:]
            break
    if rows and rows[-1].end == (len(text) if total_len is None else total_len):
        rows[-1].wrap = WRAP_END
    last = len(lines) - 1
    ls, le = lines[last]
    own = last in code_lines or bool(_OWN_LINE.match(text, ls, le))
    return _Text(rows, inline, own)


# ---------------------------------------------------------------------------------------------------------
# headers

_ROLE_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_HEADER = re.compile(r"\[(?P<role>[A-Za-z0-9_.\-]+) #(?P<number>\d+)"
                     r"(?: (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d))?(?P<cont> cont\.)?\]")


def _header_role(role: str) -> str:
    # ASCII only, so the model can always read it back; other characters become '_'
    return (_ROLE_UNSAFE.sub("_", role)[:24]) or "_"


def format_header(role: str, number: int, timestamp: float | None = None, *, continued: bool = False) -> str:
    """The header of a turn, e.g. '[user #12 2026-11-28 13:45]' or '[user #12 cont.]' (time in UTC)."""
    head = f"[{_header_role(role)} #{number}"
    if continued:
        return head + " cont.]"
    if timestamp is not None:
        t = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
        head += t.strftime(" %Y-%m-%d %H:%M")
    return head + "]"


def parse_header(line: str) -> Header | None:
    """Parse a header or continuation marker back (surrounding spaces ignored); None if it is not one."""
    m = _HEADER.fullmatch(line.strip())
    if m is None:
        return None
    return Header(m.group("role"), int(m.group("number")), m.group("time"), m.group("cont") is not None)


# ---------------------------------------------------------------------------------------------------------
# rows -> pages

class _Pager:
    """Places pieces on rows, rows on pages; keeps each page's segments and pieces."""

    def __init__(self) -> None:
        self.pages: list[Page] = []
        self._new_page()

    def _new_page(self) -> None:
        self.rows: list[list[_Cell]] = []
        self.pieces: list[dict] = []
        self.segments: list[dict] = []

    def rows_left(self) -> int:
        return ROWS - len(self.rows)

    def col(self) -> int:
        """Cells used on the current (last) row; COLS when there is no row yet (nothing can go inline)."""
        return sum(c[1] for c in self.rows[-1]) if self.rows else COLS

    def begin_segment(self, **kw: Any) -> None:
        self.segments.append(dict(kw, continues=False))

    def place(self, cells: list[_Cell], kind: str, *, new_row: bool, start: int = -1, end: int = -1,
              wrap: str = "") -> None:
        """Put one piece on a new row or after one separator space on the current row."""
        if new_row or not self.rows:
            self.rows.append([])
        row = self.rows[-1]
        if row:
            row.append(_SPACE)
        col = sum(c[1] for c in row)
        pos = len(row)
        row.extend(cells)
        self.pieces.append(dict(segment=len(self.segments) - 1, kind=kind, row=len(self.rows) - 1, col=col,
                                width=sum(c[1] for c in cells), pos=pos, start=start, end=end, wrap=wrap))

    def flush(self) -> None:
        if not self.rows and not self.segments:
            return
        segs = []
        for i, s in enumerate(self.segments):
            mine = [p for p in self.pieces if p["segment"] == i]
            texts = [p for p in mine if p["kind"] == "text"]
            start = texts[0]["start"] if texts else s["resume"]
            end = texts[-1]["end"] if texts else s["resume"]
            rows = [p["row"] for p in mine] or [0]
            segs.append(Segment(s["turn_id"], s["turn_number"], s["role"], min(rows), max(rows), s["continued"],
                                s["continues"], start, end))
        pieces = [Piece(**p) for p in self.pieces]
        self.pages.append(_make_page(self.rows, segs, pieces))
        self._new_page()


def _draw(rows: list[list[_Cell]]) -> tuple[Image.Image, np.ndarray, tuple[str, ...], list, list]:
    ids = np.zeros((ROWS, COLS), np.int32)      # glyph id per cell (0 = nothing to draw)
    codes = np.zeros((ROWS, COLS), np.int32)
    lines = []
    bad = []
    escaped = []
    atlas = F.atlas
    for r, row in enumerate(rows):
        col = 0
        row_ids = [0] * COLS
        row_codes = [0] * COLS
        chars = []
        for ch, w, st, _, orig in row:
            if ch != " ":
                row_ids[col] = atlas.ids.get((ch, st, w)) or atlas.glyph_id(ch, st, w)
            row_codes[col] = ord(ch)
            if w == 2:
                row_codes[col + 1] = -1
            if orig > 0:
                bad.append((r, col, orig))
            elif orig < 0:
                escaped.append((r, col, -1 - orig))
            chars.append(ch)
            col += w
        line = "".join(chars).rstrip(" ")
        # trailing spaces are not drawn: their cells are empty
        n_trailing = len(chars) - len(line)
        if n_trailing:
            end = col - n_trailing
            row_codes[end:col] = [0] * (col - end)
        ids[r] = row_ids
        codes[r] = row_codes
        lines.append(line)
    lines.extend([""] * (ROWS - len(rows)))

    # Paste every glyph tile with max-ink compositing. Column starts repeat every 5 columns (64 px) and row
    # starts every 5 rows (128 px), so the cells of one (row % 5, col % 5) phase sit on a regular lattice
    # whose tiles never overlap: each phase is one strided view and one vectorised maximum.
    ink = np.zeros((PAGE_SIZE, PAGE_SIZE), np.uint8)
    tiles = atlas.tiles
    P = F.PAD
    for a in range(5):
        rows_a = ids[a::5]                                   # (R5, COLS)
        if not rows_a.any():
            continue
        for b in range(5):
            sel = rows_a[:, b::5]                            # (R5, 15) glyph ids of this phase
            if not sel.any():
                continue
            origin = (Y0[a] - P) * PAGE_SIZE + (X0[b] - P)
            view = np.lib.stride_tricks.as_strided(
                ink.reshape(-1)[origin:], shape=(sel.shape[0], sel.shape[1], F.TILE_H, F.TILE_W),
                strides=(128 * PAGE_SIZE, 64, PAGE_SIZE, 1), writeable=True)   # (R5, 15, TH, TW)
            np.maximum(view, tiles[sel], out=view)
    image = Image.fromarray(255 - ink, mode="L")
    codes.setflags(write=False)
    return image, codes, tuple(lines), bad, escaped


def _make_page(rows: list[list[_Cell]], segments: list[Segment], pieces: list[Piece]) -> Page:
    image, codes, lines, bad, escaped = _draw(rows)
    return Page(image, lines, Layout(tuple(segments), tuple(pieces), tuple(bad), tuple(escaped)), codes)


def _header_cells(line: str) -> list[_Cell]:
    return [(ch, 1, F.BOLD, -1, 0) for ch in line]


# ---------------------------------------------------------------------------------------------------------
# public rendering functions

def render_turns(turns: Sequence[Turn], *, first_turn_number: int = 1, max_pages: int | None = None) -> list[Page]:
    """Render conversation turns to dense pages (module docstring); long turns continue on the next pages
    under a '[role #N cont.]' marker. Turn i is numbered first_turn_number + i. With max_pages, only the
    first pages are drawn (the last one's segments then say `continues` where a turn goes on)."""
    if isinstance(turns, Turn):
        raise TypeError("render_turns expects a sequence of Turn; wrap a single turn in a list: [turn]")
    if isinstance(first_turn_number, bool) or not isinstance(first_turn_number, int):
        raise TypeError(f"first_turn_number must be an int, got {type(first_turn_number).__name__}")
    if first_turn_number < 0:
        raise ValueError(f"first_turn_number must be >= 0 (headers print '#N'), got {first_turn_number}")
    if max_pages is not None and (isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1):
        raise ValueError(f"max_pages must be a positive int or None, got {max_pages!r}")
    pager = _Pager()
    inline_ok = False          # the row the last turn ended on may take the next header
    for i, turn in enumerate(turns):
        if max_pages is not None and len(pager.pages) >= max_pages:
            break
        if not isinstance(turn, Turn):
            raise TypeError(f"turns[{i}] must be an optimem Turn, got {type(turn).__name__}; "
                            "build one with Turn(role=..., text=...)")
        number = first_turn_number + i
        turn_id = turn.id if turn.id is not None else number
        header = _header_cells(format_header(turn.role, number, turn.timestamp))
        col = pager.col()
        inline = inline_ok and col + 1 + len(header) <= COLS
        lead = COLS - (col + 1 + len(header) if inline else len(header)) - 1
        text = _layout_text(turn.text, lead)
        # rows this turn needs on this page before its first text row is down: never a header alone at the foot
        need = (0 if inline else 1) + (0 if (text.inline or not text.rows) else 1)
        if pager.rows_left() < need:
            pager.flush()
            inline = False
            text = _layout_text(turn.text, COLS - len(header) - 1)
        meta = dict(turn_id=turn_id, turn_number=number, role=_header_role(turn.role))
        pager.begin_segment(**meta, continued=False, resume=0)
        pager.place(header, "header", new_row=not inline)
        for k, row in enumerate(text.rows):
            on_header_row = k == 0 and text.inline
            if not on_header_row and pager.rows_left() == 0:
                pager.segments[-1]["continues"] = True
                pager.flush()
                if max_pages is not None and len(pager.pages) >= max_pages:
                    break
                pager.begin_segment(**meta, continued=True, resume=row.start)
                pager.place(_header_cells(format_header(turn.role, number, continued=True)), "cont", new_row=True)
            pager.place(row.cells, "text", new_row=not on_header_row, start=row.start, end=row.end, wrap=row.wrap)
        inline_ok = not text.last_own_line
    if max_pages is None or len(pager.pages) < max_pages:
        pager.flush()
    return pager.pages


def _plain_pages(text: str, max_pages: int | None) -> list[Page]:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    limit = None
    total = len(text)
    if max_pages is not None:
        # a row shows at most COLS cells plus a consumed space or a line break ('\r\n'), and every other
        # character takes a cell, so this prefix fills max_pages pages; cutting it first keeps one page of a
        # 1 MB text as cheap as one page of 3 KB
        limit = max_pages * ROWS
        text = text[: limit * (COLS + 2) + 2]
    rows = _layout_text(text, None, limit_rows=limit, total_len=total).rows
    pager = _Pager()
    pager.begin_segment(turn_id=0, turn_number=0, role="", continued=False, resume=0)
    for row in rows:
        if pager.rows_left() == 0:
            pager.segments[-1]["continues"] = True
            pager.flush()
            pager.begin_segment(turn_id=0, turn_number=0, role="", continued=True, resume=row.start)
        pager.place(row.cells, "text", new_row=True, start=row.start, end=row.end, wrap=row.wrap)
    if rows and rows[-1].wrap != WRAP_END:
        pager.segments[-1]["continues"] = True     # cut by the page limit: the text goes on
    pager.flush()
    return pager.pages


def render_plain(text: str) -> list[Page]:
    """Bare text on as many pages as it needs: no headers, no markers (model evaluation). '' -> one blank page."""
    return _plain_pages(text, None)


def render_plain_page(text: str) -> Page:
    """Exactly one page of bare text; what does not fit is cut (layout.segments[0].end says where)."""
    return _plain_pages(text, 1)[0]


# ---------------------------------------------------------------------------------------------------------
# decoded page -> turns

def split_decoded(text: str, layout: Layout) -> dict[int, str]:
    """Cut one page's decoded text back into its turns: {turn_id: text shown on this page}.

    Headers are looked for where the layout puts them (immune to header-like text inside a turn), else as
    the next matching '[role #N ...]' after the previous one (robust to a reader that drops or adds text).
    The separator (one space or the row break) after a header and before the next is dropped, soft-wrapped
    rows are rejoined (a consumed space is put back), so a perfect reading gives the exact source text. A
    segment that continues on the next page ends with its row separator, so concatenating the pieces of a
    turn over its pages is exact.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a Page.layout (Layout), got {type(layout).__name__}")
    lines = text.split("\n")
    line_at = [0]
    for line in lines:
        line_at.append(line_at[-1] + len(line) + 1)
    segs = layout.segments
    heads: list[Piece | None] = [None] * len(segs)
    texts: list[list[Piece]] = [[] for _ in segs]
    for p in layout.pieces:
        if p.kind == "text":
            texts[p.segment].append(p)
        elif heads[p.segment] is None:
            heads[p.segment] = p
    # where each header is in the decoded text: (start, end) offsets, or None when not found
    found: list[tuple[int, int] | None] = [None] * len(segs)
    cursor = 0
    for k, s in enumerate(segs):
        h = heads[k]
        if h is None:
            continue
        hit = None
        if h.row < len(lines):
            m = _HEADER.match(text, line_at[h.row] + h.pos)
            if m is not None and m.start() >= cursor and int(m.group("number")) == s.turn_number:
                hit = m
        if hit is None:
            for m in _HEADER.finditer(text, cursor):
                if int(m.group("number")) == s.turn_number:
                    hit = m
                    break
        if hit is not None:
            found[k] = (hit.start(), hit.end())
            cursor = hit.end()

    def expected(k: int, end: bool) -> int:
        """Where the layout puts segment k's header (its end with end=True), clipped to the text."""
        h = heads[k]
        if h.row >= len(lines):
            return len(text)
        return min(line_at[h.row] + h.pos + (h.width if end else 0), len(text))

    out: dict[int, str] = {}
    for k, s in enumerate(segs):
        pieces = texts[k]
        if heads[k] is None:
            a = line_at[pieces[0].row] + pieces[0].pos if pieces and pieces[0].row < len(lines) else 0
        else:
            a = found[k][1] if found[k] is not None else expected(k, True)
            if a < len(text) and text[a] in " \n":
                a += 1
        b = len(text)
        for k2 in range(k + 1, len(segs)):
            h2 = heads[k2]
            if h2 is not None:
                b = found[k2][0] if found[k2] is not None else expected(k2, False)
                # no separator when the header starts the (empty) last row of this segment's text
                shared = h2.pos == 0 and bool(pieces) and pieces[-1].row == h2.row
                if not shared and b > a and text[b - 1] in " \n":
                    b -= 1
                break
        b = max(a, b)
        parts = text[a:b].split("\n")
        if k + 1 == len(segs):
            # page.text drops trailing empty rows and a reader may add some: match the layout's row count
            while len(parts) > len(pieces) and parts[-1] == "":
                parts.pop()
            if len(parts) < len(pieces):
                parts += [""] * (len(pieces) - len(parts))
        if not pieces:
            piece = ""
        elif len(parts) == len(pieces):
            piece = "".join(part + _JOIN[p.wrap] for part, p in zip(parts, pieces))
        else:
            piece = "\n".join(parts)
        out[s.turn_id] = out.get(s.turn_id, "") + piece
    return out
