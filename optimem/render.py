"""Turns -> page images on a fixed monospace grid, plus the layout map that cuts a decoded page back into turns.

The optical model is trained on exactly these pixels, so everything here is part of the model's contract:
change the geometry, the font or the drawing rules and every checkpoint must be retrained.

Page geometry (1024 x 1024, grayscale "L", 255 = white paper, dark ink):

    MARGIN_X = 32.0 |<-------------- COLS = 75 cells of CELL_W = 12.8 px = 960 px -------------->| 32.0
    MARGIN_Y = 25.6   ROWS = 38 rows of CELL_H = 25.6 px = 972.8 px, then a 25.6 px bottom margin

Cell (r, c) is the box x in [MARGIN_X + c*CELL_W, +CELL_W), y in [MARGIN_Y + r*CELL_H, +CELL_H). A glyph is
drawn at the rounded top-left of its cell with its baseline BASELINE px below it. Five columns are exactly
64 px and five rows exactly 128 px, so at 1024 px one 64 x 64 visual-token region holds 5 columns x 2.5 rows.

Text rules (each input character maps to whole cells, so `Page.lines` is exactly what was drawn):
- '\\n', '\\r\\n' and a lone '\\r' end a line; a tab advances to the next multiple of TAB_SIZE columns.
- Characters of East Asian Width W or F take two cells; every other character, combining marks included,
  takes one cell (no shaping, no bidi reordering: right-to-left text is drawn in logical order).
- Control and format characters (Unicode Cc, Cf, Zl, Zp) are drawn escaped in grey, Python style: '\\x00',
  '\\u200b', '\\U000e0001'.
- A character that no font covers (and lone surrogates, private use, unassigned code points) is drawn as a
  replacement box and appears as U+FFFD in `lines`; the layout map lists what it was.
- Lines are word-wrapped at spaces (the space at a soft break is consumed), words longer than a row are cut.
- Fenced code blocks (``` or ~~~) are highlighted with Pygments, in grayscale only: keywords and defined
  names bold, strings and numbers dark grey, comments and the fence lines light grey.

Fonts: DejaVu Sans Mono (regular + bold, 21 px) shipped in optimem/assets/fonts, so pixels are the same on
every machine with the same Pillow. Wide characters are drawn with Noto Sans Mono CJK SC when the system has
it (Debian fonts-noto-cjk); without it they become two-cell replacement boxes, so CJK pages differ between
machines with and without that font.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
import struct
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "PAGE_SIZE", "COLS", "ROWS", "CELL_W", "CELL_H", "MARGIN_X", "MARGIN_Y", "FONT_SIZE", "BASELINE",
    "TAB_SIZE", "TIERS", "RESAMPLE", "REPLACEMENT",
    "Turn", "Page", "Layout", "Segment", "RowInfo", "Header",
    "render_turns", "render_plain", "render_plain_page", "page_at_tier", "split_decoded",
    "parse_header", "format_header", "cjk_font_available",
]

# ---------------------------------------------------------------------------------------------------------
# geometry (fixed: the model is trained on it)

PAGE_SIZE = 1024
COLS = 75
ROWS = 38
CELL_W = 12.8
CELL_H = 25.6
MARGIN_X = 32.0
MARGIN_Y = 25.6
FONT_SIZE = 21    # DejaVu Sans Mono advance at 21 px is 12.6 px, just under CELL_W; ascent 20 + descent 5 < CELL_H
BASELINE = 20     # px from a cell's top to the glyph baseline
TAB_SIZE = 4
TIERS = {"large": 1280, "base": 1024, "small": 640, "tiny": 512, "gist": 384}
RESAMPLE = Image.Resampling.LANCZOS   # the one filter for every tier, training and run time alike
REPLACEMENT = "\ufffd"

_FONT_DIR = Path(__file__).parent / "assets" / "fonts"
_REGULAR_PATH = _FONT_DIR / "DejaVuSansMono.ttf"
_BOLD_PATH = _FONT_DIR / "DejaVuSansMono-Bold.ttf"
_CJK_PATH = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
_CJK_INDEX = 7    # face 7 of the collection is Noto Sans Mono CJK SC

# rounded top-left pixel of every column and row; Python's round() never meets a .5 here (steps of 0.2 px)
_X0 = [math.floor(MARGIN_X + c * CELL_W + 0.5) for c in range(COLS)]
_Y0 = [math.floor(MARGIN_Y + r * CELL_H + 0.5) for r in range(ROWS)]

# styles: (face, ink) with ink 255 = black on the page; grayscale by weight and shade only
_TEXT, _BOLD, _FAINT, _DIM = 0, 1, 2, 3
_STYLES = ((0, 255), (1, 255), (0, 150), (0, 205))

# how a row connects to the next row of the same text
WRAP_NEWLINE, WRAP_SPACE, WRAP_HARD, WRAP_END = "newline", "space", "hard", "end"


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
    """The part of one turn (or of the plain text) shown on a page.

    Content rows are first_row..last_row inclusive (first_row == last_row + 1 when the page shows only the
    header). start/end are offsets into the turn's text: text[start:end] is what this page shows.
    """

    turn_id: int            # Turn.id, or the turn number when the turn has no id; 0 in plain mode
    turn_number: int        # the number printed in the header; 0 in plain mode
    role: str               # the role as printed in the header; "" in plain mode
    header_row: int | None  # the header or continuation-marker row; None in plain mode
    first_row: int
    last_row: int
    continued: bool         # the turn began on an earlier page (the header is a "cont." marker)
    continues: bool         # the turn goes on to the next page
    start: int
    end: int


@dataclass(frozen=True)
class RowInfo:
    """What one drawn row holds: a header, a continuation marker or text of segment `segment`."""

    segment: int            # index into Layout.segments
    kind: str               # "header" | "cont" | "text"
    start: int              # text rows: turn-text offsets [start, end) covered by this row (incl. a
    end: int                # consumed break space); header rows: -1, -1
    wrap: str               # text rows: "newline" | "space" | "hard" | "end" (how it joins the next row)


@dataclass(frozen=True)
class Layout:
    """Which turn occupies which rows; rows[r] describes row r (rows after len(rows) are empty)."""

    segments: tuple[Segment, ...]
    rows: tuple[RowInfo, ...]
    undrawable: tuple[tuple[int, int, int], ...]   # (row, col, codepoint) drawn as a replacement box
    escaped: tuple[tuple[int, int, int], ...] = ()  # (row, col, codepoint) of a control char drawn escaped

    def to_json(self) -> str:
        """Compact JSON of the whole map (for storing next to a page); Layout.from_json reads it back."""
        return json.dumps({"v": 1, "segments": [dataclasses.astuple(s) for s in self.segments],
                           "rows": [dataclasses.astuple(r) for r in self.rows],
                           "undrawable": self.undrawable, "escaped": self.escaped}, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str) -> Layout:
        d = json.loads(data)
        if not isinstance(d, dict) or d.get("v") != 1:
            raise ValueError("not a layout written by Layout.to_json (format version 1); re-render the page")
        return cls(tuple(Segment(*s) for s in d["segments"]), tuple(RowInfo(*r) for r in d["rows"]),
                   tuple(tuple(u) for u in d["undrawable"]), tuple(tuple(e) for e in d["escaped"]))


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


# ---------------------------------------------------------------------------------------------------------
# fonts: which code points each font covers (read from the cmap table, no guessing from bitmaps)

def _read_cmap(path: Path, index: int = 0) -> frozenset[int]:
    data = path.read_bytes()
    base = 0
    if data[:4] == b"ttcf":
        base = struct.unpack_from(">I", data, 12 + 4 * index)[0]
    num_tables = struct.unpack_from(">H", data, base + 4)[0]
    cmap = None
    for t in range(num_tables):
        tag, _, offset, _ = struct.unpack_from(">4sIII", data, base + 12 + 16 * t)
        if tag == b"cmap":
            cmap = offset
    if cmap is None:
        raise ValueError(f"font {path} has no cmap table; use a TrueType/OpenType font")
    n_sub = struct.unpack_from(">H", data, cmap + 2)[0]
    subtables = {}
    for s in range(n_sub):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * s)
        fmt = struct.unpack_from(">H", data, cmap + offset)[0]
        subtables[(platform, encoding, fmt)] = cmap + offset
    covered: set[int] = set()
    for key in ((3, 10, 12), (0, 4, 12), (0, 6, 12)):
        if key in subtables:                       # format 12: sequential groups over all planes
            off = subtables[key]
            n_groups = struct.unpack_from(">I", data, off + 12)[0]
            for g in range(n_groups):
                start, end, glyph = struct.unpack_from(">III", data, off + 16 + 12 * g)
                covered.update(c for c in range(start, end + 1) if glyph + c - start != 0)
            return frozenset(covered)
    for key in ((3, 1, 4), (0, 3, 4), (0, 1, 4), (0, 0, 4)):
        if key in subtables:                       # format 4: segment mapping, BMP only
            off = subtables[key]
            seg_x2 = struct.unpack_from(">H", data, off + 6)[0]
            ends = struct.unpack_from(f">{seg_x2 // 2}H", data, off + 14)
            starts = struct.unpack_from(f">{seg_x2 // 2}H", data, off + 16 + seg_x2)
            deltas = struct.unpack_from(f">{seg_x2 // 2}h", data, off + 16 + 2 * seg_x2)
            range_off_pos = off + 16 + 3 * seg_x2
            range_offs = struct.unpack_from(f">{seg_x2 // 2}H", data, range_off_pos)
            for i, (start, end) in enumerate(zip(starts, ends)):
                for c in range(start, min(end, 0xFFFE) + 1):
                    if range_offs[i] == 0:
                        glyph = (c + deltas[i]) & 0xFFFF
                    else:
                        pos = range_off_pos + 2 * i + range_offs[i] + 2 * (c - start)
                        glyph = struct.unpack_from(">H", data, pos)[0]
                        glyph = (glyph + deltas[i]) & 0xFFFF if glyph else 0
                    if glyph:
                        covered.add(c)
            return frozenset(covered)
    raise ValueError(f"font {path} has no Unicode cmap subtable (format 4 or 12); use a Unicode font")


class _Fonts:
    """Loaded lazily once per process: the two shipped faces and the optional system CJK face."""

    def __init__(self) -> None:
        basic = ImageFont.Layout.BASIC    # no shaping engine: the same pixels with or without libraqm
        self.faces = (ImageFont.truetype(str(_REGULAR_PATH), FONT_SIZE, layout_engine=basic),
                      ImageFont.truetype(str(_BOLD_PATH), FONT_SIZE, layout_engine=basic))
        self.covers = (_read_cmap(_REGULAR_PATH), _read_cmap(_BOLD_PATH))
        self.cjk = None
        self.cjk_covers: frozenset[int] = frozenset()
        if _CJK_PATH.is_file():
            self.cjk = ImageFont.truetype(str(_CJK_PATH), FONT_SIZE, index=_CJK_INDEX, layout_engine=basic)
            self.cjk_covers = _read_cmap(_CJK_PATH, _CJK_INDEX)


_fonts: _Fonts | None = None


def _get_fonts() -> _Fonts:
    global _fonts
    if _fonts is None:
        _fonts = _Fonts()
    return _fonts


def cjk_font_available() -> bool:
    """True when the system CJK fallback font is installed (wide characters are then drawn, not boxed)."""
    return _get_fonts().cjk is not None


# ---------------------------------------------------------------------------------------------------------
# characters -> cells

_FONT_MAIN, _FONT_CJK, _FONT_BOX, _FONT_ESCAPE = 0, 1, 2, 3
_char_info: dict[str, tuple[str, int, int]] = {}


def _classify(ch: str) -> tuple[str, int, int]:
    """(display, width in cells, font) for one input character; display is several chars for an escape."""
    info = _char_info.get(ch)
    if info is not None:
        return info
    fonts = _get_fonts()
    cp = ord(ch)
    cat = unicodedata.category(ch)
    width = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    if cat in ("Cc", "Cf", "Zl", "Zp"):
        esc = f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"
        info = (esc, len(esc), _FONT_ESCAPE)
    elif cat in ("Cs", "Co", "Cn") or ch == REPLACEMENT:
        info = (REPLACEMENT, width, _FONT_BOX)
    elif width == 2 and cp in fonts.cjk_covers:
        info = (ch, 2, _FONT_CJK)
    elif cp in fonts.covers[0]:
        info = (ch, width, _FONT_MAIN)
    elif cp in fonts.cjk_covers:
        info = (ch, width, _FONT_CJK)
    else:
        info = (REPLACEMENT, width, _FONT_BOX)
    _char_info[ch] = info
    return info


# ---------------------------------------------------------------------------------------------------------
# glyph atlas: every (char, style, width) drawn once into a fixed-size tile, pasted by phase (see _draw)

_PAD = 3                                  # tile margin around the cell, for glyphs that overhang their cell
_TILE_H = 26 + 2 * _PAD                   # a cell is at most 26 px tall ...
_TILE_W = 26 + 2 * _PAD                   # ... and a wide char at most 26 px wide


class _Atlas:
    def __init__(self) -> None:
        self.ids: dict[tuple[str, int, int], int] = {}
        self.tiles = np.zeros((256, _TILE_H, _TILE_W), np.uint8)   # tile 0 stays blank
        self.count = 1
        self.lock = threading.Lock()

    def glyph_id(self, ch: str, style: int, width: int, font: int) -> int:
        key = (ch, style, width)
        with self.lock:
            gid = self.ids.get(key)
            if gid is None:
                gid = self.count
                if gid == len(self.tiles):
                    self.tiles = np.concatenate([self.tiles, np.zeros_like(self.tiles)])
                self.tiles[gid] = _draw_tile(ch, style, width, font)
                self.ids[key] = gid            # published only after its tile is written
                self.count += 1
        return gid


def _draw_tile(ch: str, style: int, width: int, font_kind: int) -> np.ndarray:
    """The ink (0..255) of one glyph; the cell's top-left is at (_PAD, _PAD) in the tile."""
    face, ink = _STYLES[style]
    tile = Image.new("L", (_TILE_W, _TILE_H), 0)
    draw = ImageDraw.Draw(tile)
    cell_px = width * CELL_W
    if font_kind == _FONT_BOX:
        # a hollow box, 2 px strokes so it survives the 512 px tier; from cap height to baseline
        x1 = _PAD + round(cell_px) - 3
        draw.rectangle((_PAD + 2, _PAD + 5, x1, _PAD + BASELINE), outline=ink, width=2)
        return np.asarray(tile)
    fonts = _get_fonts()
    if font_kind == _FONT_CJK:
        font = fonts.cjk
    elif face == 1 and ord(ch) in fonts.covers[1]:
        font = fonts.faces[1]
    else:
        font = fonts.faces[0]
    advance = font.getlength(ch)
    if advance > 0 and unicodedata.category(ch) not in ("Mn", "Me"):
        x = _PAD + round((cell_px - advance) / 2)
    else:                                 # combining mark: centre its ink in its own cell
        left, _, right, _ = font.getbbox(ch, anchor="ls")
        x = _PAD + round((cell_px - (right - left)) / 2 - left)
    draw.text((x, _PAD + BASELINE), ch, fill=ink, font=font, anchor="ls")
    return np.asarray(tile)


_atlas = _Atlas()


# ---------------------------------------------------------------------------------------------------------
# text -> rows

# a cell: (display char, width, style, source offset, flag) where flag is the original codepoint of a
# character drawn as a replacement box, -1 - codepoint on the first cell of an escape, else 0
_Cell = tuple


@dataclass
class _Row:
    cells: list
    kind: str           # "header" | "cont" | "text"
    start: int
    end: int
    wrap: str
    segment: int = -1


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*$")


def _logical_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, line breaks excluded; '' gives one empty line."""
    lines = []
    pos = 0
    for m in _LINE_BREAK.finditer(text):
        lines.append((pos, m.start()))
        pos = m.end()
    lines.append((pos, len(text)))
    return lines


def _code_styles(text: str, lines: list[tuple[int, int]]) -> bytearray | None:
    """Per-character style for fenced code blocks (None when the text has no fence)."""
    if "```" not in text and "~~~" not in text:
        return None
    styles = bytearray(len(text))
    i = 0
    while i < len(lines):
        s, e = lines[i]
        m = _FENCE_OPEN.match(text, s, e)
        if m is None or m.end() != e:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2)
        styles[s:e] = bytes([_FAINT]) * (e - s)
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
            styles[cs:ce] = bytes([_FAINT]) * (ce - cs)
        i = j + 1
    return styles


_lexers: dict[str, Any] = {}
_token_styles: dict[Any, int] = {}


def _token_style(ttype: Any) -> int:
    st = _token_styles.get(ttype)
    if st is None:
        from pygments import token as T
        if ttype in T.Comment:
            st = _FAINT
        elif ttype in T.Keyword or ttype in T.Operator.Word or ttype in T.Name.Function \
                or ttype in T.Name.Class or ttype in T.Name.Decorator or ttype in T.Name.Builtin:
            st = _BOLD
        elif ttype in T.Literal.String or ttype in T.Literal.Number:
            st = _DIM
        else:
            st = _TEXT
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
            if st != _TEXT and value:
                a = start + index
                b = min(a + len(value), end)
                styles[a:b] = bytes([st]) * (b - a)
    except Exception:       # a third-party lexer failing on odd input must not lose the text: draw it plain
        styles[start:end] = bytes(end - start)


def _line_cells(text: str, start: int, end: int, styles: bytearray | None) -> list[_Cell]:
    cells: list[_Cell] = []
    col = 0
    for i in range(start, end):
        ch = text[i]
        st = styles[i] if styles is not None else _TEXT
        if ch == "\t":
            n = TAB_SIZE - col % TAB_SIZE
            cells.extend([(" ", 1, st, i, 0)] * n)
            col += n
            continue
        disp, w, font = _char_info.get(ch) or _classify(ch)
        if font == _FONT_ESCAPE:
            cells.append((disp[0], 1, _FAINT, i, -1 - ord(ch)))
            for d in disp[1:]:
                cells.append((d, 1, _FAINT, i, 0))
            col += len(disp)
        elif font == _FONT_BOX:
            cells.append((disp, w, st, i, 0 if ch == REPLACEMENT else ord(ch)))
            col += w
        else:
            cells.append((disp, w, st, i, 0))
            col += w
    return cells


def _wrap(text: str, cells: list[_Cell], line_start: int, line_end: int) -> list[_Row]:
    """Word-wrap one logical line into rows of at most COLS cells."""
    n = len(cells)
    rows: list[_Row] = []
    i = 0
    while True:
        col, j = 0, i
        while j < n and col + cells[j][1] <= COLS:
            col += cells[j][1]
            j += 1
        start = cells[i][3] if i < n else line_start
        if j == n:
            rows.append(_Row(cells[i:n], "text", start, line_end, WRAP_NEWLINE))
            return rows
        # break at the first space of the last space run that starts after a non-space, so the row never
        # ends in a space (rows are right-stripped) and exactly one space is consumed by the break
        k = j
        while k > i and not (cells[k][0] == " " and text[cells[k][3]] == " " and cells[k - 1][0] != " "):
            k -= 1
        if k > i:
            nxt = k + 1
            if nxt == n:
                rows.append(_Row(cells[i:k], "text", start, line_end, WRAP_NEWLINE))
                return rows
            rows.append(_Row(cells[i:k], "text", start, cells[nxt][3], WRAP_SPACE))
            i = nxt
        else:
            rows.append(_Row(cells[i:j], "text", start, cells[j][3], WRAP_HARD))
            i = j


def _text_rows(text: str, *, limit_rows: int | None = None, total_len: int | None = None) -> list[_Row]:
    """All rows of a text, the last one's wrap 'end' if it ends the text; stops at limit_rows rows.

    total_len is the length of the full text when `text` is a cut prefix of it."""
    if not text:
        return []
    lines = _logical_lines(text)
    styles = _code_styles(text, lines)
    rows: list[_Row] = []
    for s, e in lines:
        rows.extend(_wrap(text, _line_cells(text, s, e, styles), s, e))
        if limit_rows is not None and len(rows) >= limit_rows:
            del rows[limit_rows:]
            break
    if rows and rows[-1].end == (len(text) if total_len is None else total_len):
        rows[-1].wrap = WRAP_END
    return rows


# ---------------------------------------------------------------------------------------------------------
# headers

_ROLE_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_HEADER = re.compile(r"\[(?P<role>[A-Za-z0-9_.\-]+) #(?P<number>\d+)"
                     r"(?: (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d))?(?P<cont> cont\.)?\]")


def _header_role(role: str) -> str:
    # ASCII only, so the model can always read it back; other characters become '_'
    return (_ROLE_UNSAFE.sub("_", role)[:24]) or "_"


def format_header(role: str, number: int, timestamp: float | None = None, *, continued: bool = False) -> str:
    """The header line of a turn, e.g. '[user #12 2026-11-28 13:45]' or '[user #12 cont.]' (time in UTC)."""
    head = f"[{_header_role(role)} #{number}"
    if continued:
        return head + " cont.]"
    if timestamp is not None:
        t = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
        head += t.strftime(" %Y-%m-%d %H:%M")
    return head + "]"


def parse_header(line: str) -> Header | None:
    """Parse a header or continuation line back (surrounding spaces ignored); None if it is not one."""
    m = _HEADER.fullmatch(line.strip())
    if m is None:
        return None
    return Header(m.group("role"), int(m.group("number")), m.group("time"), m.group("cont") is not None)


def _header_row(line: str, kind: str) -> _Row:
    return _Row([(ch, 1, _BOLD, -1, 0) for ch in line], kind, -1, -1, WRAP_END)


# ---------------------------------------------------------------------------------------------------------
# rows -> page

def _draw(rows: list[_Row]) -> tuple[Image.Image, np.ndarray, tuple[str, ...], list, list]:
    ids = np.zeros((ROWS, COLS), np.int32)      # glyph id per cell (0 = nothing to draw)
    codes = np.zeros((ROWS, COLS), np.int32)
    lines = []
    bad = []
    escaped = []
    atlas = _atlas
    for r, row in enumerate(rows):
        col = 0
        row_ids = [0] * COLS
        row_codes = [0] * COLS
        chars = []
        for ch, w, st, _, orig in row.cells:
            if ch != " ":
                row_ids[col] = atlas.ids.get((ch, st, w)) or atlas.glyph_id(ch, st, w, _char_font(ch))
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
    for a in range(5):
        rows_a = ids[a::5]                                   # (R5, COLS)
        if not rows_a.any():
            continue
        for b in range(5):
            sel = rows_a[:, b::5]                            # (R5, 15) glyph ids of this phase
            if not sel.any():
                continue
            origin = (_Y0[a] - _PAD) * PAGE_SIZE + (_X0[b] - _PAD)
            view = np.lib.stride_tricks.as_strided(
                ink.reshape(-1)[origin:], shape=(sel.shape[0], sel.shape[1], _TILE_H, _TILE_W),
                strides=(128 * PAGE_SIZE, 64, PAGE_SIZE, 1), writeable=True)   # (R5, 15, TH, TW)
            np.maximum(view, tiles[sel], out=view)
    image = Image.fromarray(255 - ink, mode="L")
    codes.setflags(write=False)
    return image, codes, tuple(lines), bad, escaped


def _char_font(ch: str) -> int:
    # a drawn char is the input char itself, an ASCII char of an escape or header, or the box
    return _FONT_BOX if ch == REPLACEMENT else _classify(ch)[2]


def _make_page(rows: list[_Row], segments: list[Segment]) -> Page:
    image, codes, lines, bad, escaped = _draw(rows)
    infos = tuple(RowInfo(row.segment, row.kind, row.start, row.end, row.wrap) for row in rows)
    return Page(image, lines, Layout(tuple(segments), infos, tuple(bad), tuple(escaped)), codes)


class _Paginator:
    """Collects rows into pages and keeps each page's segments."""

    def __init__(self) -> None:
        self.pages: list[Page] = []
        self.rows: list[_Row] = []
        self.segments: list[dict] = []

    def room(self) -> int:
        return ROWS - len(self.rows)

    def begin_segment(self, **kw: Any) -> None:
        self.segments.append(dict(kw, first_row=len(self.rows), continues=False))

    def add(self, row: _Row) -> None:
        row.segment = len(self.segments) - 1
        if row.kind != "text":
            self.segments[-1]["header_row"] = len(self.rows)
            self.segments[-1]["first_row"] = len(self.rows) + 1
        self.rows.append(row)

    def flush(self) -> None:
        if not self.rows and not self.segments:
            return
        segs = []
        for i, s in enumerate(self.segments):
            # segments are contiguous: one ends where the next one's header begins
            last = (self.segments[i + 1]["header_row"] if i + 1 < len(self.segments) else len(self.rows)) - 1
            content = self.rows[s["first_row"]:last + 1]
            start = content[0].start if content else s["resume"]
            end = content[-1].end if content else s["resume"]
            segs.append(Segment(s["turn_id"], s["turn_number"], s["role"], s["header_row"], s["first_row"],
                                last, s["continued"], s["continues"], start, end))
        self.pages.append(_make_page(self.rows, segs))
        self.rows = []
        self.segments = []


# ---------------------------------------------------------------------------------------------------------
# public rendering functions

def render_turns(turns: Sequence[Turn], *, first_turn_number: int = 1) -> list[Page]:
    """Render conversation turns to pages: a header row per turn, then its text; long turns continue on the
    next pages under a '[role #N cont.]' marker. Turn i is numbered first_turn_number + i."""
    if isinstance(turns, Turn):
        raise TypeError("render_turns expects a sequence of Turn; wrap a single turn in a list: [turn]")
    if isinstance(first_turn_number, bool) or not isinstance(first_turn_number, int):
        raise TypeError(f"first_turn_number must be an int, got {type(first_turn_number).__name__}")
    if first_turn_number < 0:
        raise ValueError(f"first_turn_number must be >= 0 (headers print '#N'), got {first_turn_number}")
    pager = _Paginator()
    for i, turn in enumerate(turns):
        if not isinstance(turn, Turn):
            raise TypeError(f"turns[{i}] must be an optimem Turn, got {type(turn).__name__}; "
                            "build one with Turn(role=..., text=...)")
        number = first_turn_number + i
        turn_id = turn.id if turn.id is not None else number
        rows = _text_rows(turn.text)
        need = 2 if rows else 1                      # never leave a header alone at the foot of a page
        if pager.room() < need:
            pager.flush()
        meta = dict(turn_id=turn_id, turn_number=number, role=_header_role(turn.role))
        pager.begin_segment(**meta, header_row=None, continued=False, resume=0)
        pager.add(_header_row(format_header(turn.role, number, turn.timestamp), "header"))
        for row in rows:
            if pager.room() == 0:
                pager.segments[-1]["continues"] = True
                pager.flush()
                pager.begin_segment(**meta, header_row=None, continued=True, resume=row.start)
                pager.add(_header_row(format_header(turn.role, number, continued=True), "cont"))
            pager.add(row)
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
    rows = _text_rows(text, limit_rows=limit, total_len=total)
    pager = _Paginator()
    pager.begin_segment(turn_id=0, turn_number=0, role="", header_row=None, continued=False, resume=0)
    for row in rows:
        if pager.room() == 0:
            pager.segments[-1]["continues"] = True
            pager.flush()
            pager.begin_segment(turn_id=0, turn_number=0, role="", header_row=None, continued=True,
                                resume=row.start)
        pager.add(row)
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


def page_at_tier(image: Image.Image, tier: str) -> Image.Image:
    """The page image at a DeepEncoder mode's resolution, resized with RESAMPLE (LANCZOS); a copy at 'base'."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
    size = TIERS[tier]
    if image.size == (size, size):
        return image.copy()
    return image.resize((size, size), RESAMPLE)


def split_decoded(text: str, layout: Layout) -> dict[int, str]:
    """Cut one page's decoded text back into its turns: {turn_id: text shown on this page}.

    Header lines are found with parse_header (robust to a reader that drops or adds lines); where a header is
    not found the row positions of the layout are used. Soft-wrapped rows are rejoined (a consumed space is
    put back), so a perfect reading gives the exact source text. A segment that continues on the next page
    ends with its row separator, so concatenating the pieces of a turn over its pages is exact.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a Page.layout (Layout), got {type(layout).__name__}")
    lines = text.split("\n")
    segs = layout.segments
    # locate each header line in the decoded text, in order
    found: list[int | None] = []
    pos = 0
    for s in segs:
        hit = None
        if s.header_row is not None:
            # where the layout puts it (a perfect reading; also immune to header-like lines in the text) ...
            h = parse_header(lines[s.header_row]) if pos <= s.header_row < len(lines) else None
            if h is not None and h.number == s.turn_number:
                hit = s.header_row
        if s.header_row is not None and hit is None:
            # ... else the first matching header line after the previous one
            for i in range(pos, len(lines)):
                h = parse_header(lines[i])
                if h is not None and h.number == s.turn_number:
                    hit = i
                    break
        if hit is not None:
            pos = hit + 1
        found.append(hit)
    out: dict[int, str] = {}
    for k, s in enumerate(segs):
        rows = layout.rows[s.first_row:s.last_row + 1]
        if s.header_row is None:
            a = s.first_row
        else:
            a = found[k] + 1 if found[k] is not None else s.header_row + 1
        if k + 1 < len(segs):
            b = found[k + 1] if found[k + 1] is not None else a + len(rows)
        else:
            b = len(lines)
        piece_lines = lines[a:b]
        if k + 1 == len(segs):
            # page.text drops trailing empty rows and a reader may add some: match the layout's row count
            while len(piece_lines) > len(rows) and piece_lines[-1] == "":
                piece_lines.pop()
            if len(piece_lines) < len(rows):
                piece_lines += [""] * (len(rows) - len(piece_lines))
        if len(piece_lines) == len(rows):
            parts = []
            for line, row in zip(piece_lines, rows):
                parts.append(line)
                if row.wrap == WRAP_NEWLINE:
                    parts.append("\n")
                elif row.wrap == WRAP_SPACE:
                    parts.append(" ")
            piece = "".join(parts)
        else:
            piece = "\n".join(piece_lines)
        out[s.turn_id] = out.get(s.turn_id, "") + piece
    return out
