"""Tests of ocr_model.page.codec: stored grey levels, PNG bytes, as_stored, redact on dense pages."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from ocr_model.page import (
    CELL_H,
    CELL_W,
    MARGIN_X,
    MARGIN_Y,
    PAGE_LEVELS,
    PAGE_SIZE,
    Page,
    Turn,
    as_stored,
    page_at_tier,
    png_bytes,
    redact,
    render_turns,
)
from ocr_model.page.codec import LEVELS, grey_index

PROSE = ("The committee met on Tuesday to review the budget for the coming year. After a long discussion about "
         "travel costs, they agreed to cut the conference allowance by a third. 中文 한국어 😀 ελληνικά")


@pytest.fixture(scope="module")
def page() -> Page:
    (p,) = render_turns([Turn("user", PROSE, timestamp=1_795_873_500.0),
                         Turn("assistant", "```python\ndef f(x):\n    return x  # comment\n```")])
    return p


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"))


# ------------------------------------------------------------------------------------------------ levels, PNG

def test_levels():
    assert PAGE_LEVELS == 16 and LEVELS == (2, 4, 16, 256)


@pytest.mark.parametrize("levels", [2, 4, 16, 256])
@pytest.mark.parametrize("tier", ["base", "tiny"])
def test_png_round_trip_equals_as_stored(page, levels, tier):
    data = png_bytes(page_at_tier(page.image, tier), levels)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.mode == ("L" if levels == 256 else "P")
        decoded = pixels(img)
    stored = as_stored(page.image, tier, levels)
    assert stored.mode == "L" and stored.size == page_at_tier(page.image, tier).size
    assert np.array_equal(decoded, pixels(stored))
    greys = np.unique(decoded)
    assert len(greys) <= levels
    if levels < 256:
        step = 255 // (levels - 1)
        assert set(greys.tolist()) <= {i * step for i in range(levels)}
    assert greys.min() < 128 and greys.max() == 255                     # ink and paper survive


def test_fewer_levels_fewer_bytes(page):
    small = page_at_tier(page.image, "small")
    sizes = [len(png_bytes(small, n)) for n in (2, 4, 16, 256)]
    assert sizes == sorted(sizes) and sizes[2] * 1.5 < sizes[3]


def test_as_stored_256_is_the_plain_resample(page):
    for tier in ("base", "small", "gist"):
        assert as_stored(page.image, tier, 256).tobytes() == page_at_tier(page.image, tier).tobytes()
    assert as_stored(page.image, "base").tobytes() == as_stored(page.image, "base", PAGE_LEVELS).tobytes()


def test_grey_index_is_the_nearest_level():
    img = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), mode="L")
    idx = grey_index(img, 16)
    assert idx.min() == 0 and idx.max() == 15
    values = np.arange(256)
    assert np.array_equal(idx.reshape(-1), np.rint(values * 15 / 255).astype(np.uint8))


@pytest.mark.parametrize("levels", [0, 1, 3, 8, 255, 257, "16", None, 16.5])
def test_bad_levels_raise(page, levels):
    with pytest.raises(ValueError, match="page levels"):
        png_bytes(page.image, levels)
    with pytest.raises(ValueError, match="page levels"):
        as_stored(page.image, "base", levels)


def test_as_stored_bad_tier(page):
    with pytest.raises(ValueError, match="choose one of"):
        as_stored(page.image, "huge")


# ------------------------------------------------------------------------------------------------ redact

A, B, C = 1, 2, 3


@pytest.fixture(scope="module")
def dense() -> Page:
    """Turns A, B, C sharing rows: A and B's start on row 0, B's end and C on row 1."""
    turns = [Turn("user", "hi there"), Turn("assistant", "quite a long answer " * 4 + "end."), Turn("user", "ok!")]
    (p,) = render_turns(turns)
    rows = {s.turn_id: (s.first_row, s.last_row) for s in p.layout.segments}
    assert rows == {A: (0, 0), B: (0, 1), C: (1, 1)}, p.text
    return p


def boxes(page: Page, turn_id: int, scale: float, inner: bool) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) pixel boxes of a turn's cells at `scale`: the pixels wholly inside (inner) or the pixels
    touching them (not inner)."""
    rnd0, rnd1 = (math.ceil, math.floor) if inner else (math.floor, math.ceil)
    out = []
    for p in page.layout.pieces:
        if page.layout.segments[p.segment].turn_id != turn_id or p.width == 0:
            continue
        x0, x1 = MARGIN_X + p.col * CELL_W, MARGIN_X + (p.col + p.width) * CELL_W
        y0, y1 = MARGIN_Y + p.row * CELL_H, MARGIN_Y + (p.row + 1) * CELL_H
        out.append((rnd0(y0 * scale), rnd1(y1 * scale), rnd0(x0 * scale), rnd1(x1 * scale)))
    return out


def reach(page: Page, turn_ids: set[int], scale: float, shape: tuple[int, int]) -> np.ndarray:
    """Mask of what redact may touch: each piece's cells and half a cell to either side."""
    mask = np.zeros(shape, bool)
    for p in page.layout.pieces:
        if page.layout.segments[p.segment].turn_id in turn_ids:
            x0 = math.floor((MARGIN_X + (p.col - 0.5) * CELL_W) * scale)
            x1 = math.ceil((MARGIN_X + (p.col + p.width + 0.5) * CELL_W) * scale)
            y0 = math.floor((MARGIN_Y + p.row * CELL_H) * scale)
            y1 = math.ceil((MARGIN_Y + (p.row + 1) * CELL_H) * scale)
            mask[max(0, y0):y1, max(0, x0):x1] = True
    return mask


@pytest.mark.parametrize("tier,levels", [("base", 256), ("base", 16), ("small", 16), ("tiny", 16), ("tiny", 256),
                                         ("gist", 4)])
def test_redact_blanks_exactly_one_turn(dense, tier, levels):
    image = as_stored(dense.image, tier, levels)
    scale = image.size[0] / PAGE_SIZE
    before = pixels(image).copy()
    after = pixels(redact(image, dense.layout, {B}))
    assert np.array_equal(pixels(image), before)                      # the input is not touched
    assert after.shape == before.shape
    for y0, y1, x0, x1 in boxes(dense, B, scale, inner=False):        # B's cells are white ...
        assert before[y0:y1, x0:x1].min() < 200                       # (they had ink)
        assert after[y0:y1, x0:x1].min() == 255
    for tid in (A, C):                                                # ... A's and C's are as they were
        for y0, y1, x0, x1 in boxes(dense, tid, scale, inner=True):
            assert y1 > y0 and x1 > x0
            assert before[y0:y1, x0:x1].min() < 200
            assert np.array_equal(after[y0:y1, x0:x1], before[y0:y1, x0:x1])
    changed = after != before
    assert changed.any() and not (changed & ~reach(dense, {B}, scale, after.shape)).any()
    assert (after[changed] == 255).all()


def test_redact_several_turns_and_none(dense):
    img = dense.image
    everything = pixels(redact(img, dense.layout, {A, B, C}))
    assert everything.min() == 255                                    # the page only held these turns
    assert pixels(redact(img, dense.layout, set())).tobytes() == pixels(img).tobytes()
    assert pixels(redact(img, dense.layout, {99})).tobytes() == pixels(img).tobytes()
    ac = pixels(redact(img, dense.layout, {A, C}))
    b_only = pixels(redact(img, dense.layout, {B}))
    assert np.array_equal(np.maximum(ac, b_only), everything)


def test_redact_a_turn_that_continues_over_pages():
    turns = [Turn("user", "q"), Turn("assistant", "\n".join(f"line {i}" for i in range(50))), Turn("user", "bye")]
    pages = render_turns(turns)
    assert len(pages) == 2
    second = pages[1]
    out = pixels(redact(second.image, second.layout, {2}))
    for y0, y1, x0, x1 in boxes(second, 3, 1.0, inner=True):
        assert np.array_equal(out[y0:y1, x0:x1], pixels(second.image)[y0:y1, x0:x1])
    # the 'cont.' marker row goes with the turn
    assert out[:52].min() == 255
    lines_left = [r for r in range(len(second.lines)) if out[int(MARGIN_Y + r * CELL_H) + 1:
                                                            int(MARGIN_Y + (r + 1) * CELL_H)].min() < 255]
    assert lines_left == [next(s.first_row for s in second.layout.segments if s.turn_id == 3)]
