"""Glyph readout geometry and the heads' save/load (ocr_model/glyphs.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ocr_model import glyphs
from optimem import render


def _classes_to_probs(page: render.Page, grid: int) -> torch.Tensor:
    """One-hot (g, g, S, classes) probabilities of a page's true glyph classes (what a perfect head gives)."""
    cls = glyphs.glyph_classes(page.cell_codes()).reshape(-1)
    table = glyphs.slot_table(grid)
    target = np.where(table >= 0, cls[np.clip(table, 0, None)], 0)
    return torch.nn.functional.one_hot(torch.from_numpy(target), glyphs.N_GLYPH_CLASSES).float()


@pytest.mark.parametrize("grid", [20, 16, 10, 8, 6])
def test_perfect_cells_spell_the_page_text_exactly(grid):
    text = "def f(x):\n    return {'a': [1, 2]}  # tail   \n\n\tTabbed and trailing  \n" + "word " * 60 + "\nEND"
    page = render.render_plain_page(text)
    cells, conf = glyphs.read_cells(_classes_to_probs(page, grid))
    assert cells.shape == (render.ROWS, render.COLS) and (conf == 1.0).all()
    assert glyphs.cells_text(cells) == page.text


def test_non_ascii_cells_read_as_replacement_characters():
    page = render.render_plain_page("café ok")
    cells, _ = glyphs.read_cells(_classes_to_probs(page, 16))
    assert (cells == glyphs.OTHER).sum() == 1
    assert glyphs.cells_text(cells) == "caf\ufffd ok"


def test_heads_save_a_subset_and_load_back(tmp_path):
    torch.manual_seed(0)
    heads = glyphs.make_glyph_heads(32, [16, 10, 8])
    glyphs.save_glyph_heads(heads, tmp_path, grids=[16, 8])
    back = glyphs.load_glyph_heads(tmp_path, 32)
    assert sorted(back.keys()) == ["16", "8"]
    x = torch.randn(1, 16, 16, 32)
    # stored in bf16: the same logits up to bf16 rounding
    assert torch.allclose(back["16"](x), heads["16"](x), atol=0.1)
    assert glyphs.load_glyph_heads(tmp_path / "nothing-here", 32) is None
    with pytest.raises(ValueError, match="width 48"):
        glyphs.load_glyph_heads(tmp_path, 48)
