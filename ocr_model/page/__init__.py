"""The page format: the contract between what Memory draws and what the optical model reads.

Imports nothing of optimem and no torch, so both the memory library and the model build on it:

    geometry  the grid (75 x 38 cells on a 1024 px page), the tier table, page_at_tier
    fonts     the shipped fonts, which characters they draw, the glyph atlas
    render    Turn, Page, Layout; render_turns (dense conversation pages), render_plain, split_decoded
    codec     how a page is stored: grey levels, PNG bytes, as_stored, redact
    glyphs    the glyph class of every drawable character and the visual-token -> cell slot table
"""
from __future__ import annotations

from .codec import PAGE_LEVELS, as_stored, png_bytes, redact
from .geometry import (ARCHIVE_TIERS, CELL_H, CELL_W, COLS, MARGIN_X, MARGIN_Y, PAGE_SIZE, ROWS, TIERS, Tier,
                       page_at_tier, tier)
from .render import (Header, Layout, Page, Piece, Segment, Turn, cells_used, format_header, parse_header,
                     render_plain, render_plain_page, render_turns, split_decoded)

__all__ = [
    "PAGE_SIZE", "COLS", "ROWS", "CELL_W", "CELL_H", "MARGIN_X", "MARGIN_Y", "Tier", "TIERS", "ARCHIVE_TIERS",
    "tier", "page_at_tier",
    "Turn", "Page", "Layout", "Segment", "Piece", "Header", "render_turns", "render_plain", "render_plain_page",
    "split_decoded", "parse_header", "format_header", "cells_used",
    "PAGE_LEVELS", "png_bytes", "as_stored", "redact",
]
