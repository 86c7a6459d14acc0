"""Glyph classes: the name of what is drawn in each page cell, and which visual token owns which cell.

Every character a shipped font draws (ocr_model.page.fonts) has a class of its own, so a reader that names
each cell's class spells the page exactly. The table is append-only, so heads trained on a prefix of it
read as before (and train on, widened):

    0          blank cell (nothing drawn, or a space)
    1..94      printable ASCII '!'..'~'
    95         OTHER: a replacement box (a character no font draws), read as U+FFFD
    96..284    EXTRA_CHARS: the first non-ASCII classes (run s3's heads end here)
    285        WIDE_RIGHT: the right half of a two-cell character (read as nothing)
    286..      every other drawable character, by code point: Latin, Greek, Cyrillic, ..., CJK, kana, Hangul,
               emoji (N_CLASSES in all)

Token geometry: for a g x g token grid (g = tier side / 64) each token covers a square of 1024/g page pixels
and owns the cells whose centres lie in it; `slot_table(g)` numbers them. No torch here: the heads that
predict these classes are ocr_model.glyphs.
"""
from __future__ import annotations

from functools import cache

import numpy as np

from . import fonts
from .geometry import CELL_H, CELL_W, COLS, MARGIN_X, MARGIN_Y, PAGE_SIZE, ROWS

__all__ = ["EXTRA_CHARS", "ASCII_CLASSES", "OTHER", "WIDE_RIGHT", "S3_CLASSES", "classes", "n_classes",
           "glyph_classes", "slot_table", "cells_text"]

EXTRA_CHARS = (
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿŒœŠšŽžŸ"
    "¡¿«»°±×÷§¶©®™€£¥¢µ·¬¦¤¨¯´¸¹²³¼½¾ªº"
    "‘’‚“”„–—…•†‡‰′″‹›"
    "←↑→↓↔⇐⇒⇔"
    "─│┌┐└┘├┤┬┴┼═║╔╗╚╝╠╣╦╩╬"
    "≤≥≠≈∞√∑∫∂∆∇∈∧∨≡"
    "αβγδελμπσφωΔΣΩ"
    "✓✗★☆■□▪●○◆"
)
ASCII_CLASSES = 96     # blank + 94 printable ASCII + OTHER: the classes of the first heads (run s2)
OTHER = 95
S3_CLASSES = ASCII_CLASSES + len(EXTRA_CHARS)   # 285: the classes of run s3's heads
WIDE_RIGHT = S3_CLASSES


@cache
def classes() -> tuple[str, ...]:
    """The character of every class ('' for WIDE_RIGHT, ' ' for blank, U+FFFD for OTHER)."""
    head = [" "] + [chr(33 + i) for i in range(94)] + ["\ufffd"] + list(EXTRA_CHARS) + [""]
    known = set(head)
    regular, bold, cjk, emoji = fonts.covered()
    rest = sorted(cp for cp in regular | bold | cjk | emoji if chr(cp) not in known and fonts.drawable(cp))
    return tuple(head + [chr(cp) for cp in rest])


def n_classes() -> int:
    return len(classes())


@cache
def _lookup() -> np.ndarray:
    table = classes()
    top = max(ord(c) for c in table if c) + 1
    lut = np.full(top, OTHER, dtype=np.int64)   # code point -> class
    for i, ch in enumerate(table):
        if ch and i != OTHER:
            lut[ord(ch)] = i
    lut[0] = 0
    return lut


def glyph_classes(codes: np.ndarray) -> np.ndarray:
    """Map `Page.cell_codes()` (code points, 0 empty, -1 right half of a wide char) to glyph classes."""
    codes = np.asarray(codes)
    lut = _lookup()
    inside = (codes >= 0) & (codes < len(lut))
    out = np.where(inside, lut[np.clip(codes, 0, len(lut) - 1)], OTHER)
    return np.where(codes == -1, WIDE_RIGHT, out).astype(np.int64)


@cache
def slot_table(grid: int) -> np.ndarray:
    """For a g x g token grid: flat cell index (r * COLS + c) for each (token row, token col, slot), -1 if none.

    Shape (g, g, S) with S = max rows per token * max cols per token.
    """
    span = PAGE_SIZE / grid  # page pixels covered by one visual token
    col_centre = [MARGIN_X + (c + 0.5) * CELL_W for c in range(COLS)]
    row_centre = [MARGIN_Y + (r + 0.5) * CELL_H for r in range(ROWS)]
    cols_of = [[c for c, x in enumerate(col_centre) if j * span <= x < (j + 1) * span] for j in range(grid)]
    rows_of = [[r for r, y in enumerate(row_centre) if i * span <= y < (i + 1) * span] for i in range(grid)]
    n_cols = max(len(cs) for cs in cols_of)
    n_rows = max(len(rs) for rs in rows_of)
    table = np.full((grid, grid, n_rows * n_cols), -1, dtype=np.int64)
    for i, rs in enumerate(rows_of):
        for j, cs in enumerate(cols_of):
            for a, r in enumerate(rs):
                for b, c in enumerate(cs):
                    table[i, j, a * n_cols + b] = r * COLS + c
    return table


@cache
def _chars_array(n: int) -> np.ndarray:
    return np.array(classes()[:n], dtype=object)


def cells_text(cells: np.ndarray) -> str:
    """(ROWS, COLS) glyph classes -> the page text as `Page.text` defines it (OTHER -> U+FFFD, WIDE_RIGHT -> '')."""
    chars = _chars_array(n_classes())
    rows = ["".join(chars[row]).rstrip(" ") for row in np.asarray(cells)]
    return "\n".join(rows).rstrip("\n")
