"""The page grid and the resolution tiers: the numbers every other part of the page format is built on.

Page geometry (1024 x 1024, grayscale "L", 255 = white paper, dark ink):

    MARGIN_X = 32.0 |<-------------- COLS = 75 cells of CELL_W = 12.8 px = 960 px -------------->| 32.0
    MARGIN_Y = 25.6   ROWS = 38 rows of CELL_H = 25.6 px = 972.8 px, then a 25.6 px bottom margin

Cell (r, c) is the box x in [MARGIN_X + c*CELL_W, +CELL_W), y in [MARGIN_Y + r*CELL_H, +CELL_H). A glyph is
drawn at the rounded top-left of its cell with its baseline BASELINE px below it. Five columns are exactly
64 px and five rows exactly 128 px, so at 1024 px one 64 x 64 visual-token region holds 5 columns x 2.5 rows.

Tiers: a page is stored and read at one of the DeepEncoder's resolutions. One visual token covers 64 x 64
pixels of the tier's image, so a tier of side S has a (S/64) x (S/64) token grid; the decoder sees
grid * (grid + 1) + 1 positions for it (a newline token after each grid row and one view separator).
ARCHIVE_TIERS is the fading order, sharpest first: consolidation moves a page one or more steps down it.

The optical model is trained on exactly these numbers: change one and every checkpoint must be retrained.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

__all__ = [
    "PAGE_SIZE", "COLS", "ROWS", "CELL_W", "CELL_H", "MARGIN_X", "MARGIN_Y", "FONT_SIZE", "BASELINE",
    "TAB_SIZE", "TOKEN_PX", "Tier", "TIERS", "ARCHIVE_TIERS", "RESAMPLE", "tier", "page_at_tier",
    "decoder_positions",
]

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
TOKEN_PX = 64     # image pixels per visual token side (16 px patches, then the 4 x 4 compressor)
RESAMPLE = Image.Resampling.LANCZOS   # the one filter for every tier, training and run time alike


@dataclass(frozen=True)
class Tier:
    """One resolution: the page image's side in pixels and the visual tokens it costs."""

    name: str
    side: int

    @property
    def grid(self) -> int:
        """Visual tokens per side of the token grid."""
        return self.side // TOKEN_PX

    @property
    def tokens(self) -> int:
        """Visual tokens of one page at this tier (grid x grid)."""
        return self.grid * self.grid


# the one tier table, sharpest first ("large" is the official 1280 px mode; Memory stores from "base" down)
TIERS: dict[str, Tier] = {t.name: t for t in (Tier("large", 1280), Tier("base", 1024), Tier("small", 640),
                                              Tier("tiny", 512), Tier("gist", 384))}
ARCHIVE_TIERS: tuple[str, ...] = tuple(TIERS)


def tier(name: str) -> Tier:
    """The Tier called `name`; a clear error for anything else."""
    try:
        return TIERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown tier {name!r}; choose one of {', '.join(TIERS)}") from None


def decoder_positions(grid: int) -> int:
    """Decoder positions of one g x g token grid: a newline token after each row, then a view separator."""
    return grid * (grid + 1) + 1


def page_at_tier(image: Image.Image, name: str) -> Image.Image:
    """The page image at a tier's resolution, resized with RESAMPLE (LANCZOS); a copy when already that size."""
    side = tier(name).side
    if image.size == (side, side):
        return image.copy()
    return image.resize((side, side), RESAMPLE)
