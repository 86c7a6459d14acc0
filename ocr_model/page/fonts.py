"""The shipped fonts, which character each draws, and the glyph atlas the renderer pastes from.

Three fonts ship in ocr_model/page/fonts/, so every machine with the same Pillow draws the same pixels:
- DejaVu Sans Mono, regular and bold, 21 px (Bitstream Vera licence): Latin with every European accent (and
  44 of Vietnamese's 90 precomposed letters U+1EA0..U+1EF9: the other 46 are boxes, archived through the
  escaped drawing), IPA, Greek, Cyrillic, Armenian, part of Arabic, punctuation, arrows, math, box drawing, symbols.
- Noto Sans Mono CJK SC (OFL-1.1), cut to 12,972 characters: the Han characters of GB 2312, Big5 level 1 and
  JIS X 0208 (simplified and traditional Chinese, Japanese kanji), the 2,350 Hangul syllables of KS X 1001,
  kana, CJK punctuation and full-width forms (`python -m ocr_model.page.make_fonts` made the cut).
- Symbola (free for any use), cut to its 854 wide pictographs U+1F300..U+1FAFF: emoji, in one grey.

A character is drawn by the first of these that covers it (wide characters prefer the CJK and emoji fonts).
Characters of East Asian Width W or F take two cells, every other character one. Control and format
characters (Cc, Cf, Zl, Zp) and the emoji variation selectors U+FE0E/U+FE0F are drawn escaped ('\\x00',
'\\u200b', '\\ufe0f'); anything no font covers (and lone surrogates, private use, unassigned code points)
is drawn as a replacement box. `drawable(cp)` says which code points a font draws: exactly those have a
glyph class of their own (ocr_model.page.glyphs).
"""
from __future__ import annotations

import struct
import threading
import unicodedata
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .geometry import BASELINE, CELL_W, FONT_SIZE

__all__ = ["FONT_DIR", "REPLACEMENT", "MAIN", "CJK", "EMOJI", "BOX", "ESCAPE", "classify", "drawable",
           "covered", "read_cmap", "atlas", "TILE_H", "TILE_W", "PAD"]

FONT_DIR = Path(__file__).parent / "fonts"
_REGULAR_PATH = FONT_DIR / "DejaVuSansMono.ttf"
_BOLD_PATH = FONT_DIR / "DejaVuSansMono-Bold.ttf"
_CJK_PATH = FONT_DIR / "NotoSansMonoCJKsc-Regular.subset.otf"
_EMOJI_PATH = FONT_DIR / "Symbola.emoji.subset.ttf"
REPLACEMENT = "\ufffd"

# how a character is drawn
MAIN, CJK, BOX, ESCAPE, EMOJI = 0, 1, 2, 3, 4
_ESCAPED_MARKS = frozenset((0xFE0E, 0xFE0F))   # invisible emoji/text presentation selectors


def read_cmap(path: Path, index: int = 0) -> frozenset[int]:
    """The code points a TrueType/OpenType font maps to a glyph (format 12 or 4 cmap subtable)."""
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
    out: set[int] = set()
    for key in ((3, 10, 12), (0, 4, 12), (0, 6, 12)):
        if key in subtables:                       # format 12: sequential groups over all planes
            off = subtables[key]
            n_groups = struct.unpack_from(">I", data, off + 12)[0]
            for g in range(n_groups):
                start, end, glyph = struct.unpack_from(">III", data, off + 16 + 12 * g)
                out.update(c for c in range(start, end + 1) if glyph + c - start != 0)
            return frozenset(out)
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
                        out.add(c)
            return frozenset(out)
    raise ValueError(f"font {path} has no Unicode cmap subtable (format 4 or 12); use a Unicode font")


@cache
def covered() -> tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int]]:
    """Code points of (regular, bold, CJK, emoji): read once from the shipped files."""
    return read_cmap(_REGULAR_PATH), read_cmap(_BOLD_PATH), read_cmap(_CJK_PATH), read_cmap(_EMOJI_PATH)


@cache
def _faces() -> tuple:
    basic = ImageFont.Layout.BASIC    # no shaping engine: the same pixels with or without libraqm
    return tuple(ImageFont.truetype(str(p), FONT_SIZE, layout_engine=basic)
                 for p in (_REGULAR_PATH, _BOLD_PATH, _CJK_PATH, _EMOJI_PATH))


_char_info: dict[str, tuple[str, int, int]] = {}


def classify(ch: str) -> tuple[str, int, int]:
    """(display, width in cells, how drawn) for one input character; display is several chars for an escape."""
    info = _char_info.get(ch)
    if info is not None:
        return info
    regular, _, cjk, emoji = covered()
    cp = ord(ch)
    cat = unicodedata.category(ch)
    width = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    if cat in ("Cc", "Cf", "Zl", "Zp") or cp in _ESCAPED_MARKS:
        esc = f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"
        info = (esc, len(esc), ESCAPE)
    elif cat in ("Cs", "Co", "Cn") or ch == REPLACEMENT:
        info = (REPLACEMENT, width, BOX)
    elif width == 2 and cp in cjk:
        info = (ch, 2, CJK)
    elif width == 2 and cp in emoji:
        info = (ch, 2, EMOJI)
    elif cp in regular:
        info = (ch, width, MAIN)
    elif cp in cjk:
        info = (ch, width, CJK)
    else:
        info = (REPLACEMENT, width, BOX)
    _char_info[ch] = info
    return info


def drawable(cp: int) -> bool:
    """True when a shipped font draws this code point itself (not escaped, not a replacement box)."""
    try:
        ch = chr(cp)
    except (ValueError, OverflowError):
        return False
    return ch != " " and classify(ch)[2] in (MAIN, CJK, EMOJI)


# ---------------------------------------------------------------------------------------------------------
# glyph atlas: every (char, style, width) drawn once into a fixed-size tile, pasted by the renderer

PAD = 3                                   # tile margin around the cell, for glyphs that overhang their cell
TILE_H = 26 + 2 * PAD                     # a cell is at most 26 px tall ...
TILE_W = 26 + 2 * PAD                     # ... and a wide char at most 26 px wide

# styles: (face, ink) with ink 255 = black on the page; grayscale by weight and shade only
TEXT, BOLD, FAINT, DIM = 0, 1, 2, 3
STYLES = ((0, 255), (1, 255), (0, 150), (0, 205))


def _draw_tile(ch: str, style: int, width: int, kind: int) -> np.ndarray:
    """The ink (0..255) of one glyph; the cell's top-left is at (PAD, PAD) in the tile."""
    face, ink = STYLES[style]
    tile = Image.new("L", (TILE_W, TILE_H), 0)
    draw = ImageDraw.Draw(tile)
    cell_px = width * CELL_W
    if kind == BOX:
        # a hollow box, 2 px strokes so it survives the 512 px tier; from cap height to baseline
        x1 = PAD + round(cell_px) - 3
        draw.rectangle((PAD + 2, PAD + 5, x1, PAD + BASELINE), outline=ink, width=2)
        return np.asarray(tile)
    faces = _faces()
    if kind == CJK:
        font = faces[2]
    elif kind == EMOJI:
        font = faces[3]
    elif face == 1 and ord(ch) in covered()[1]:
        font = faces[1]
    else:
        font = faces[0]
    advance = font.getlength(ch)
    if advance > 0 and unicodedata.category(ch) not in ("Mn", "Me"):
        x = PAD + round((cell_px - advance) / 2)
    else:                                 # combining mark: centre its ink in its own cell
        left, _, right, _ = font.getbbox(ch, anchor="ls")
        x = PAD + round((cell_px - (right - left)) / 2 - left)
    draw.text((x, PAD + BASELINE), ch, fill=ink, font=font, anchor="ls")
    return np.asarray(tile)


class _Atlas:
    def __init__(self) -> None:
        self.ids: dict[tuple[str, int, int], int] = {}
        self.tiles = np.zeros((256, TILE_H, TILE_W), np.uint8)   # tile 0 stays blank
        self.count = 1
        self.lock = threading.Lock()

    def glyph_id(self, ch: str, style: int, width: int) -> int:
        key = (ch, style, width)
        gid = self.ids.get(key)
        if gid is not None:
            return gid
        kind = BOX if ch == REPLACEMENT else classify(ch)[2]
        with self.lock:
            gid = self.ids.get(key)
            if gid is None:
                gid = self.count
                if gid == len(self.tiles):
                    self.tiles = np.concatenate([self.tiles, np.zeros_like(self.tiles)])
                self.tiles[gid] = _draw_tile(ch, style, width, kind)
                self.ids[key] = gid            # published only after its tile is written
                self.count += 1
        return gid


atlas = _Atlas()
