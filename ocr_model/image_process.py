"""The only PIL -> tensor code: the official DeepSeek-OCR preprocessing.

- tiny (512) / small (640) / gist (384, ours): plain `resize((S,S))` (distorts the aspect ratio, as official)
- base (1024) / large (1280): `ImageOps.pad` to S x S, aspect kept, grey (127,127,127) bars, centred
- gundam: 640 px tiles (InternVL-style grid choice, 2..9 tiles) + a 1024 px padded global view
- then RGB (greyscale replicated), ToTensor, Normalize(mean=0.5, std=0.5) -> values in [-1, 1]

An image that already has the mode's size is passed through untouched (the renderer's `page_at_tier`
does the resizing for our pages, with its own documented filter).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from .config import MODES
from .page.geometry import decoder_positions

__all__ = ["MODES", "PAD_COLOR", "to_tensor", "prepare", "to_gundam", "GundamInput", "gundam_grid",
           "visual_token_count", "resample_pages", "copy_pixels"]

PAD_COLOR = (127, 127, 127)  # int(0.5 * 255): the official padding grey
GUNDAM_TILE, GUNDAM_GLOBAL = 640, 1024
_RESIZE_MODES = {"tiny", "small", "gist"}


def prepare(image: Image.Image, mode: str) -> Image.Image:
    """Resize or pad one image to the mode's square size (PIL in, PIL out)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {sorted(MODES)} (or to_gundam for gundam)")
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    S = MODES[mode]
    if image.size == (S, S):
        return image
    if mode in _RESIZE_MODES:
        return image.resize((S, S))
    return ImageOps.pad(image.convert("RGB"), (S, S), color=PAD_COLOR)


def _normalise(images: Sequence[Image.Image]) -> torch.Tensor:
    arrs = []
    for im in images:
        if im.mode == "L":
            a = np.asarray(im, dtype=np.float32)[None].repeat(3, axis=0)  # [3,S,S]
        else:
            a = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)  # [3,S,S]
        arrs.append(a)
    x = torch.from_numpy(np.stack(arrs))  # [B,3,S,S] in 0..255
    return (x / 255.0 - 0.5) / 0.5


def to_tensor(images: Image.Image | Sequence[Image.Image], mode: str) -> torch.Tensor:
    """PIL images -> FloatTensor [B,3,S,S] in [-1,1] for `OpticalModel.encode` (S = MODES[mode])."""
    if isinstance(images, Image.Image):
        images = [images]
    if mode == "gundam":
        raise ValueError("gundam mode yields a variable number of tiles per image; use to_gundam(image) "
                         "and OpticalModel.encode_gundam")
    if len(images) == 0:
        raise ValueError("to_tensor got no images")
    return _normalise([prepare(im, mode) for im in images])


@dataclass(frozen=True)
class GundamInput:
    """global_view [1,3,1024,1024]; tiles [n,3,640,640] row-major, or None for small images;
    grid = (tiles across, tiles down)."""

    global_view: torch.Tensor
    tiles: torch.Tensor | None
    grid: tuple[int, int]

    @property
    def visual_tokens(self) -> int:
        """LM positions incl. newlines and the separator."""
        nw, nh = self.grid
        local = (nh * 10) * (nw * 10 + 1) if self.tiles is not None else 0
        return 16 * 17 + 1 + local


def gundam_grid(width: int, height: int, min_num: int = 2, max_num: int = 9, tile: int = GUNDAM_TILE) -> tuple[int, int]:
    """The official (InternVL) choice of (tiles across, tiles down): the closest aspect ratio, ties going to
    the later (larger) grid if the image area exceeds half of the grid's area."""
    aspect = width / height
    ratios = set((i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                 if min_num <= i * j <= max_num)
    ratios = sorted(ratios, key=lambda r: r[0] * r[1])
    best, best_diff, area = (1, 1), float("inf"), width * height
    for r in ratios:
        diff = abs(aspect - r[0] / r[1])
        if diff < best_diff:
            best_diff, best = diff, r
        elif diff == best_diff and area > 0.5 * tile * tile * r[0] * r[1]:
            best = r
    return best


def to_gundam(image: Image.Image, *, min_crops: int = 2, max_crops: int = 9) -> GundamInput:
    """One image in Gundam mode: no tiles if both sides <= 640, else the official dynamic tiling."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    image = image.convert("RGB")
    global_view = _normalise([ImageOps.pad(image, (GUNDAM_GLOBAL, GUNDAM_GLOBAL), color=PAD_COLOR)])
    w, h = image.size
    if w <= GUNDAM_TILE and h <= GUNDAM_TILE:
        return GundamInput(global_view, None, (1, 1))
    nw, nh = gundam_grid(w, h, min_crops, max_crops)
    resized = image.resize((GUNDAM_TILE * nw, GUNDAM_TILE * nh))
    tiles = [resized.crop((c * GUNDAM_TILE, r * GUNDAM_TILE, (c + 1) * GUNDAM_TILE, (r + 1) * GUNDAM_TILE))
             for r in range(nh) for c in range(nw)]
    return GundamInput(global_view, _normalise(tiles), (nw, nh))


def visual_token_count(mode: str) -> tuple[int, int]:
    """(vision tokens as the paper counts them, LM positions incl. newlines + separator) for a fixed mode."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {sorted(MODES)}")
    g = MODES[mode] // 64
    return g * g, decoder_positions(g)


# ---------------------------------------------------------------------------------------------------------
# Pillow's LANCZOS resize of greyscale pages (the renderer's `page_at_tier`), on tensors: the same uint8 pixels,
# bit for bit, computed where the pages already are (a GPU: the reader's other views of a page). Pillow
# (libImaging/Resample.c) resizes in two passes, horizontal then vertical, each with per-output-pixel weights
# of a 3-lobe Lanczos window stretched by the scale, normalised to sum 1, rounded to 22-bit fixed point; a
# pass sums pixel * weight + 2^21 in integers, shifts right by 22 and clips to 0..255. Here each pass is one
# float64 matrix product (every partial sum is an integer below 2^53, so exact) and the same shift.

_PRECISION_BITS = 32 - 8 - 2


def _lanczos(x: np.ndarray) -> np.ndarray:
    def sinc(t: np.ndarray) -> np.ndarray:
        t = t * np.pi
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(t == 0.0, 1.0, np.sin(t) / t)

    return np.where((-3.0 <= x) & (x < 3.0), sinc(x) * sinc(x / 3.0), 0.0)


def lanczos_weights(in_size: int, out_size: int) -> np.ndarray:
    """float64 (out_size, in_size): Pillow's fixed-point LANCZOS weights of each output pixel (integers)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    w = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        k = _lanczos((np.arange(xmin, xmax) - center + 0.5) / filterscale)
        total = k.sum()
        if total != 0.0:
            k = k / total
        w[xx, xmin:xmax] = np.where(k < 0, np.trunc(-0.5 + k * (1 << _PRECISION_BITS)),
                                    np.trunc(0.5 + k * (1 << _PRECISION_BITS)))
    return w


def resample_pages(pages: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 [B,S,S] greyscale pages -> uint8 [B,side,side], equal to Pillow's `resize((side, side), LANCZOS)`
    of each page (tests/ocr_model/test_image_process.py); on the pages' device, in float64."""
    if pages.dtype != torch.uint8 or pages.dim() != 3 or pages.shape[1] != pages.shape[2]:
        raise ValueError(f"resample_pages takes uint8 square pages [B,S,S]; got {pages.dtype} {tuple(pages.shape)}")
    S = pages.shape[1]
    if S == side:
        return pages.clone()
    w = torch.from_numpy(lanczos_weights(S, side)).to(pages.device)  # [side,S]
    half, unit = float(1 << (_PRECISION_BITS - 1)), float(1 << _PRECISION_BITS)

    def shift(ss: torch.Tensor) -> torch.Tensor:  # Pillow's clip8(ss >> 22)
        return torch.floor(ss / unit).clamp_(0, 255)

    x = pages.to(torch.float64)
    x = shift(x @ w.T + half)  # [B,S,side]: the horizontal pass (each row of the page)
    x = shift(w @ x + half)  # [B,side,side]: the vertical pass
    return x.to(torch.uint8)


# --- a greyscale page's pixels out of Pillow, fast ------------------------------------------------------------
# np.asarray(image) goes through Image.tobytes (Pillow's raw encoder, 64 KB at a time, then a join): ~1.1 ms for
# a 1024 px page on this repository's 2-core machine, against ~0.1 ms for one copy of Pillow's own memory. Pillow
# >= 11.2 exports an image through the Arrow C data interface (__arrow_c_array__: a stable, documented C ABI);
# for an 'L' image that is one uint8 buffer of w * h pixels, row after row.


class _ArrowArray(ctypes.Structure):  # struct ArrowArray of the Arrow C data interface
    _fields_ = [("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
                ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64),
                ("buffers", ctypes.POINTER(ctypes.c_void_p)), ("children", ctypes.c_void_p),
                ("dictionary", ctypes.c_void_p), ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p)]


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype, _capsule_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]


def copy_pixels(image: Image.Image, out: np.ndarray) -> None:
    """out[:] = the pixels of an 'L' image ((h, w) uint8, C-contiguous): one copy out of Pillow's memory through
    its Arrow export where it has one (the array's capsule keeps that memory alive meanwhile), else
    np.asarray (older Pillow, an image stored in several blocks, or one over memory Pillow does not own, as
    Image.fromarray makes: a page opened from its file, as Memory reads it, is Pillow's own)."""
    w, h = image.size
    if image.mode != "L" or out.shape != (h, w) or out.dtype != np.uint8:
        raise ValueError(f"copy_pixels copies an 'L' image into a (h, w) uint8 array; got a {image.mode!r} image "
                         f"of {w}x{h} and a {out.dtype} array of shape {out.shape}")
    try:
        if image.readonly:  # memory Pillow does not own (Image.fromarray): Pillow 12.3 crashes exporting it
            raise ValueError("not Pillow's own memory")
        _, capsule = image.__arrow_c_array__()
        arr = _ArrowArray.from_address(_capsule_pointer(capsule, b"arrow_array"))
        if arr.length != w * h or arr.offset != 0 or arr.n_buffers != 2 or not arr.buffers[1]:
            raise ValueError("not one buffer of w * h pixels")
        src = np.ctypeslib.as_array((ctypes.c_uint8 * (w * h)).from_address(arr.buffers[1]))
        np.copyto(out, src.reshape(h, w))
        del src  # before the capsule (its release hands the memory back to Pillow)
    except (AttributeError, ValueError, TypeError, OSError):
        out[:] = np.asarray(image, dtype=np.uint8)

