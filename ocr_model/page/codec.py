"""The stored-page codec: how a page image is kept on disk (grey levels, PNG) and how one turn is blanked.

A page is stored at its tier as a palette PNG of `levels` evenly spaced greys (16 by default: 4 bits per
pixel, 2.3x fewer bytes than 8-bit at 640/512/384 px, 1.4x at 1024, read as well by the model); 256 keeps
8-bit greys. `as_stored` gives the very pixels a stored page has, without the PNG round trip, so training
and evaluation see what Memory keeps. `redact` paints one turn's cells white (forgetting a turn that shares
its page with others) and leaves every other turn's cells as they were.
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from .geometry import CELL_H, CELL_W, MARGIN_X, MARGIN_Y, PAGE_SIZE, page_at_tier
from .render import Layout

__all__ = ["PAGE_LEVELS", "LEVELS", "png_bytes", "grey_index", "as_stored", "redact"]

PAGE_LEVELS = 16                  # grey levels a stored page keeps by default (Memory's `page_levels`)
_PNG_BITS = {2: 1, 4: 2, 16: 4}   # levels -> bits per pixel of the palette PNG
LEVELS = (2, 4, 16, 256)


def _check_levels(levels: int) -> None:
    if levels not in LEVELS:
        raise ValueError(f"page levels must be one of {LEVELS} (grey levels kept per pixel), got {levels!r}")


def grey_index(image: Image.Image, levels: int) -> np.ndarray:
    """[H,W] uint8 index 0..levels-1 of the nearest of `levels` evenly spaced greys."""
    return np.rint(np.asarray(image.convert("L"), dtype=np.float32) * ((levels - 1) / 255.0)).astype(np.uint8)


def png_bytes(image: Image.Image, levels: int = PAGE_LEVELS) -> bytes:
    """A page image as PNG bytes: levels 2, 4 or 16 as a 1/2/4-bit palette PNG of evenly spaced greys,
    256 as 8-bit grayscale."""
    _check_levels(levels)
    buf = io.BytesIO()
    if levels == 256:
        image.save(buf, format="PNG")
        return buf.getvalue()
    pal = Image.frombytes("P", image.size, np.ascontiguousarray(grey_index(image, levels)).tobytes())
    step = 255 // (levels - 1)  # 17, 85, 255: the palette greys are exact integers
    pal.putpalette([i * step for i in range(levels) for _ in range(3)])  # index i -> grey (g, g, g)
    pal.save(buf, format="PNG", bits=_PNG_BITS[levels])
    return buf.getvalue()


def as_stored(image: Image.Image, tier: str, levels: int = PAGE_LEVELS) -> Image.Image:
    """`image` resampled to `tier` with the grey levels Memory would store: the same pixels as writing the PNG
    and reading it back (call it again with a lower tier for a page that faded through consolidation)."""
    _check_levels(levels)
    image = page_at_tier(image, tier)
    if levels == 256:
        return image
    return Image.fromarray(grey_index(image, levels) * np.uint8(255 // (levels - 1)), mode="L")


def redact(image: Image.Image, layout: Layout, turn_ids: set[int]) -> Image.Image:
    """Paint the cells of these turns (headers included) white, at the image's own scale. Each piece's box
    reaches half a cell into the separator cells beside it (glyphs overhang their cell by up to 3 px at
    1024 px), never into a neighbouring turn's own cells."""
    img = image.copy()
    scale = img.size[0] / PAGE_SIZE
    draw = ImageDraw.Draw(img)
    mine = {k for k, s in enumerate(layout.segments) if s.turn_id in turn_ids}
    for p in layout.pieces:
        if p.segment not in mine:
            continue
        x0 = math.floor((MARGIN_X + (p.col - 0.5) * CELL_W) * scale)
        x1 = math.ceil((MARGIN_X + (p.col + p.width + 0.5) * CELL_W) * scale)
        y0 = math.floor((MARGIN_Y + p.row * CELL_H) * scale)
        y1 = math.ceil((MARGIN_Y + (p.row + 1) * CELL_H) * scale)
        draw.rectangle([max(0, x0), max(0, y0), min(x1, img.size[0]) - 1, min(y1, img.size[1]) - 1], fill=255)
    return img
