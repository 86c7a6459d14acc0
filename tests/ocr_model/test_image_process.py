from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ocr_model.image_process import gundam_grid, prepare, to_gundam, to_tensor, visual_token_count


def test_shapes_and_normalisation():
    img = Image.new("L", (1024, 1024), 255)
    img.putpixel((0, 0), 0)
    x = to_tensor([img, img], "base")
    assert x.shape == (2, 3, 1024, 1024) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == [-1.0, -1.0, -1.0]  # black -> -1, greyscale replicated
    assert x[0, :, 5, 5].tolist() == [1.0, 1.0, 1.0]
    for mode, side in (("tiny", 512), ("small", 640), ("large", 1280), ("gist", 384)):
        assert to_tensor(img, mode).shape == (1, 3, side, side)


def test_resize_vs_pad():
    wide = Image.new("RGB", (2000, 1000), (255, 255, 255))
    small = prepare(wide, "small")
    assert small.size == (640, 640) and small.getpixel((0, 0)) == (255, 255, 255)  # stretched, no bars
    base = prepare(wide, "base")
    assert base.size == (1024, 1024)
    assert base.getpixel((512, 0)) == (127, 127, 127)  # grey bar on top
    assert base.getpixel((512, 512)) == (255, 255, 255)
    x = to_tensor(wide, "base")
    assert x[0, 0, 0, 512].item() == pytest.approx((127 / 255 - 0.5) / 0.5)


def test_identity_when_already_sized():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (640, 640), dtype=np.uint8), "L")
    assert prepare(img, "small") is img


def test_gundam_grid_known_cases():
    # worked examples from deepseek-ocr.md 1.4 (replicating the official count_tiles)
    a4 = (2480, 3508)
    assert gundam_grid(*a4) == (2, 3)
    assert gundam_grid(1920, 1080, max_num=6) == (2, 1)
    assert gundam_grid(1920, 1080, max_num=9) == (4, 2)


def test_gundam_input_and_counts():
    g = to_gundam(Image.new("RGB", (2480, 3508), "white"))
    assert g.grid == (2, 3) and g.tiles.shape == (6, 3, 640, 640)
    assert g.global_view.shape == (1, 3, 1024, 1024)
    assert g.visual_tokens == 903  # 856 vision tokens + newlines + separator
    small = to_gundam(Image.new("RGB", (600, 400), "white"))
    assert small.tiles is None and small.visual_tokens == 273


def test_token_counts_table():
    assert {m: visual_token_count(m) for m in ("tiny", "small", "base", "large")} == {
        "tiny": (64, 73), "small": (100, 111), "base": (256, 273), "large": (400, 421)}


def test_errors():
    with pytest.raises(ValueError, match="unknown mode"):
        to_tensor(Image.new("L", (10, 10)), "huge")
    with pytest.raises(ValueError, match="to_gundam"):
        to_tensor(Image.new("L", (10, 10)), "gundam")
    with pytest.raises(TypeError, match="PIL"):
        to_tensor([np.zeros((10, 10))], "base")


@pytest.mark.parametrize("size,side", [(1024, 640), (1024, 512), (640, 512), (512, 1024), (640, 1024), (37, 91)])
def test_resample_pages_is_pillows_lanczos_bit_for_bit(size, side):
    from ocr_model.image_process import resample_pages

    rng = np.random.default_rng(size + side)
    pages = [rng.integers(0, 256, (size, size), dtype=np.uint8), (rng.integers(0, 2, (size, size)) * 255).astype(np.uint8)]
    got = resample_pages(torch.from_numpy(np.stack(pages)), side).numpy()
    ref = np.stack([np.asarray(Image.fromarray(p).resize((side, side), Image.Resampling.LANCZOS)) for p in pages])
    assert got.dtype == np.uint8 and got.shape == (2, side, side)
    assert np.array_equal(got, ref)


def test_resample_pages_refuses_what_is_not_square_uint8_pages():
    from ocr_model.image_process import resample_pages

    with pytest.raises(ValueError, match="uint8 square pages"):
        resample_pages(torch.zeros(2, 8, 9, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="uint8 square pages"):
        resample_pages(torch.zeros(2, 8, 8), 4)


def test_copy_pixels_is_np_asarray_through_pillows_memory_or_the_fallback(monkeypatch):
    """copy_pixels gives np.asarray's pixels: through Pillow's Arrow export for images in Pillow's own memory
    (a page opened from its file, as Memory reads it; a crop; one stored in many small blocks), and through
    np.asarray for memory Pillow does not own (Image.fromarray) and where an image has no export."""
    import io

    import PIL

    from ocr_model import image_process as ip
    from ocr_model.page import render_plain_page
    from ocr_model.page.codec import as_stored, png_bytes

    rng = np.random.default_rng(0)
    stored = as_stored(render_plain_page("copy me " * 50).image, "base")  # Image.fromarray: read-only
    opened = Image.open(io.BytesIO(png_bytes(stored))).convert("L")
    block = Image.core.get_block_size()
    try:
        Image.core.set_block_size(4096)  # a 1024 px page in 256 blocks
        blocks = Image.new("L", (1024, 1024))
        blocks.paste(opened)
    finally:
        Image.core.set_block_size(block)
    own = [opened, opened.crop((3, 5, 700, 401)), blocks]
    for im in [stored, Image.fromarray(rng.integers(0, 256, (37, 53), dtype=np.uint8)), *own]:
        out = np.full((im.size[1], im.size[0]), 7, dtype=np.uint8)
        ip.copy_pixels(im, out)
        assert np.array_equal(out, np.asarray(im))
    assert np.array_equal(np.asarray(opened), np.asarray(stored))
    if tuple(int(x) for x in PIL.__version__.split(".")[:2]) >= (11, 2):  # the export, not np.asarray
        outs = [np.zeros((im.size[1], im.size[0]), dtype=np.uint8) for im in own[:2]]
        with monkeypatch.context() as m:
            m.setattr(Image.Image, "tobytes", lambda *a, **k: (_ for _ in ()).throw(AssertionError("np.asarray")))
            for im, out in zip(own[:2], outs):
                ip.copy_pixels(im, out)
        assert all(np.array_equal(out, np.asarray(im)) for im, out in zip(own[:2], outs))

    def no_export(self):  # Pillow < 11.2 has no __arrow_c_array__
        raise AttributeError("__arrow_c_array__")

    monkeypatch.setattr(Image.Image, "__arrow_c_array__", no_export)
    out = np.zeros((1024, 1024), dtype=np.uint8)
    ip.copy_pixels(opened, out)
    assert np.array_equal(out, np.asarray(opened))
    with pytest.raises(ValueError, match="'L' image"):
        ip.copy_pixels(opened.convert("RGB"), out)
    with pytest.raises(ValueError, match="shape"):
        ip.copy_pixels(opened, np.zeros((10, 10), dtype=np.uint8))
