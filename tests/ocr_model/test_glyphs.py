"""Glyph readout geometry and the heads' save/load (ocr_model/glyphs.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ocr_model import glyphs
from ocr_model import page as pg


def _classes_to_probs(page: pg.Page, grid: int) -> torch.Tensor:
    """One-hot (g, g, S, classes) probabilities of a page's true glyph classes (what a perfect head gives)."""
    cls = glyphs.glyph_classes(page.cell_codes()).reshape(-1)
    table = glyphs.slot_table(grid)
    target = np.where(table >= 0, cls[np.clip(table, 0, None)], 0)
    return torch.nn.functional.one_hot(torch.from_numpy(target), glyphs.n_classes_()).float()


def _perfect_cells(page: pg.Page, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """(class, probability) per page cell, each (ROWS, COLS), as a perfect head at `grid` reads the page."""
    p, cls = glyphs.cell_log_probs(_classes_to_probs(page, grid) * 1e4).exp().max(-1)
    return cls.numpy(), p.numpy()


@pytest.mark.parametrize("grid", [20, 16, 10, 8, 6])
def test_perfect_cells_spell_the_page_text_exactly(grid):
    text = "def f(x):\n    return {'a': [1, 2]}  # tail   \n\n\tTabbed and trailing  \n" + "word " * 60 + "\nEND"
    page = pg.render_plain_page(text)
    cells, conf = _perfect_cells(page, grid)
    assert cells.shape == (pg.ROWS, pg.COLS) and (conf == 1.0).all()
    assert glyphs.cells_text(cells) == page.text


def test_drawn_characters_have_classes_and_boxes_read_as_replacement_characters():
    text = "café — “quoted” → ok ✓ ├──┤ ±5 °C αβ жук ŵ 中文\nשלום"
    page = pg.render_plain_page(text)
    cells, _ = _perfect_cells(page, 16)
    assert (cells == glyphs.OTHER).sum() == 4  # no shipped font draws Hebrew: four boxes
    assert glyphs.cells_text(cells) == "café — “quoted” → ok ✓ ├──┤ ±5 °C αβ жук ŵ 中文\n\ufffd\ufffd\ufffd\ufffd"


def test_every_extra_character_is_one_cell_of_the_shipped_font():
    page = pg.render_plain_page(glyphs.EXTRA_CHARS)
    assert not page.layout.undrawable  # the font draws each of them (no replacement boxes)
    cls = glyphs.glyph_classes(page.cell_codes())
    drawn = cls[cls != 0]
    assert len(drawn) == len(glyphs.EXTRA_CHARS) and sorted(drawn.tolist()) == list(range(96, glyphs.S3_CLASSES))


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


def test_heads_saved_as_int8_take_half_the_bytes_and_read_alike(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    heads = glyphs.make_glyph_heads(64, [10])
    (tmp_path / "bf16").mkdir()
    (tmp_path / "int8").mkdir()
    glyphs.save_glyph_heads(heads, tmp_path / "bf16")
    glyphs.save_glyph_heads(heads, tmp_path / "int8", int8=True)
    size = lambda d: (d / glyphs.FILENAME).stat().st_size  # noqa: E731
    assert size(tmp_path / "int8") < 0.6 * size(tmp_path / "bf16")
    raw = load_file(str(tmp_path / "int8" / glyphs.FILENAME))
    assert raw["10.slots.weight"].dtype == torch.int8 and raw["10.slots.weight.scale"].shape[-1] == 1
    assert raw["10.slots.bias"].dtype == torch.bfloat16  # vectors stay bf16
    back = glyphs.load_glyph_heads(tmp_path / "int8", 64)
    assert set(back.state_dict()) == set(heads.state_dict())  # no stray .scale parameters
    x = torch.randn(2, 10, 10, 64)
    ref, got = heads["10"](x), back["10"](x)
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.97
    assert (got - ref).abs().max() < 0.1 * ref.abs().max()


def test_heads_with_the_first_96_classes_load_as_stored_or_widened(tmp_path):
    torch.manual_seed(0)
    old = glyphs.make_glyph_heads(32, [10], n_classes=glyphs.ASCII_CLASSES)
    glyphs.save_glyph_heads(old, tmp_path)
    as_stored = glyphs.load_glyph_heads(tmp_path, 32)
    assert as_stored["10"].cls.out_features == glyphs.ASCII_CLASSES
    wide = glyphs.load_glyph_heads(tmp_path, 32, n_classes=glyphs.n_classes_())
    x = torch.randn(2, 10, 10, 32)
    a, b = as_stored["10"](x), wide["10"](x)
    assert b.shape[-1] == glyphs.n_classes_()
    assert torch.equal(a.argmax(-1), b.argmax(-1))  # the new classes start (almost) never chosen
    assert torch.allclose(a, b[..., : glyphs.ASCII_CLASSES])
    with pytest.raises(ValueError, match="more than"):
        glyphs.load_glyph_heads(tmp_path, 32, n_classes=50)


@pytest.mark.parametrize("grid", [16, 10, 8])
def test_cell_log_probs_put_every_slot_on_its_cell(grid):
    page = pg.render_plain_page("x = [1, 2, 3]  # cells\n\n    indented")
    probs = _classes_to_probs(page, grid)
    lp = glyphs.cell_log_probs(torch.log(probs.clamp_min(1e-9)))
    assert lp.shape == (pg.ROWS, pg.COLS, glyphs.n_classes_())
    assert glyphs.cells_text(lp.argmax(-1).numpy()) == page.text
    assert torch.allclose(lp.exp().sum(-1), torch.ones(pg.ROWS, pg.COLS))
