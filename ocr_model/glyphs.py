"""Glyph readout: each visual token predicts the characters of its own page region.

The renderer (`optimem.render`) draws every character in a known cell of a fixed 75 x 38 grid. For a token
grid of g x g visual tokens (g = tier size / 64), each token covers a square of 1024/g page pixels, and a cell
belongs to the token whose square holds the cell's centre. A `GlyphHead` maps every token (the projector
output, before the decoder) to S slot vectors and each slot to one of 96 glyph classes:

    0        blank cell (nothing drawn, or a space)
    1..94    printable ASCII '!'..'~'
    95       anything else drawn (a wide character's halves, a replacement box, any character not listed)
    96..     EXTRA_CHARS: Latin-1 letters and signs, typographic punctuation, arrows, box drawing, common
             math, Greek and check-mark symbols, one class each (all drawn by the shipped font in one cell)

Training uses the heads as a dense auxiliary loss from step 0 (ocr_model/train.py). At read time they are a
second, non-autoregressive reader: argmax per cell, rows right-stripped and joined by newlines, which is
exactly how `render.Page.text` is defined. Cells of class 95 cannot be spelled from the class alone (they read
as U+FFFD), so a page made mostly of them is left to the decoder (see `optimem.reader.OpticalReader`).

Heads trained before EXTRA_CHARS existed have 96 classes; they load and read as they are, and training
`--init` from them copies their 96 rows into a wider classifier (`load_glyph_heads(..., n_classes=...)`).

Heads are stored beside a checkpoint as `glyph_heads.safetensors` (keys `<grid>.slots.weight`, ...); the
official DeepSeek-OCR checkpoint has none, and then only the decoder reads.
"""
from __future__ import annotations

import os
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from optimem import render

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
ASCII_CLASSES = 96  # blank + 94 printable ASCII + OTHER: the classes of the first heads (run s2)
OTHER = 95
N_GLYPH_CLASSES = ASCII_CLASSES + len(EXTRA_CHARS)
_CHARS = np.array([" "] + [chr(33 + i) for i in range(94)] + ["\ufffd"] + list(EXTRA_CHARS))
_LOOKUP = np.full(0x2800, OTHER, dtype=np.int64)  # codepoint -> class for every codepoint below U+2800
_LOOKUP[0], _LOOKUP[32] = 0, 0
_LOOKUP[33:127] = np.arange(1, 95)
for _i, _ch in enumerate(EXTRA_CHARS):
    _LOOKUP[ord(_ch)] = ASCII_CLASSES + _i
FILENAME = "glyph_heads.safetensors"


def glyph_classes(codes: np.ndarray) -> np.ndarray:
    """Map `Page.cell_codes()` (codepoints, 0 empty, -1 right half of a wide char) to glyph classes."""
    codes = np.asarray(codes)
    inside = (codes >= 0) & (codes < len(_LOOKUP))
    return np.where(inside, _LOOKUP[np.clip(codes, 0, len(_LOOKUP) - 1)], OTHER).astype(np.int64)


@cache
def slot_table(grid: int) -> np.ndarray:
    """For a g x g token grid: flat cell index (r * COLS + c) for each (token row, token col, slot), -1 if none.

    Shape (g, g, S) with S = max rows per token * max cols per token.
    """
    span = render.PAGE_SIZE / grid  # page pixels covered by one visual token
    col_centre = [render.MARGIN_X + (c + 0.5) * render.CELL_W for c in range(render.COLS)]
    row_centre = [render.MARGIN_Y + (r + 0.5) * render.CELL_H for r in range(render.ROWS)]
    cols_of = [[c for c, x in enumerate(col_centre) if j * span <= x < (j + 1) * span] for j in range(grid)]
    rows_of = [[r for r, y in enumerate(row_centre) if i * span <= y < (i + 1) * span] for i in range(grid)]
    n_cols = max(len(cs) for cs in cols_of)
    n_rows = max(len(rs) for rs in rows_of)
    table = np.full((grid, grid, n_rows * n_cols), -1, dtype=np.int64)
    for i, rs in enumerate(rows_of):
        for j, cs in enumerate(cols_of):
            for a, r in enumerate(rs):
                for b, c in enumerate(cs):
                    table[i, j, a * n_cols + b] = r * render.COLS + c
    return table


class GlyphHead(nn.Module):
    """Per visual token: S slot vectors -> glyph class logits. One head per token-grid size (slot sets differ)."""

    def __init__(self, dim: int, n_slots: int, slot_dim: int = 64, n_classes: int = N_GLYPH_CLASSES):
        super().__init__()
        self.n_slots, self.slot_dim = n_slots, slot_dim
        self.slots = nn.Linear(dim, n_slots * slot_dim)
        self.norm = nn.LayerNorm(slot_dim)
        self.cls = nn.Linear(slot_dim, n_classes)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        B, h, w, _ = grid.shape
        x = self.slots(grid).view(B, h, w, self.n_slots, self.slot_dim)  # (B, h, w, S, E)
        return self.cls(F.gelu(self.norm(x)))  # (B, h, w, S, classes)


def make_glyph_heads(dim: int, grids, n_classes: int = N_GLYPH_CLASSES) -> nn.ModuleDict:
    """One fresh head per token-grid size in `grids`, keyed by str(grid)."""
    return nn.ModuleDict({str(g): GlyphHead(dim, slot_table(g).shape[-1], n_classes=n_classes) for g in sorted(set(grids))})


def widen_classes(state: dict, n_classes: int) -> dict:
    """A heads state dict whose classifiers have fewer than `n_classes` rows (heads trained before classes were
    added), widened: the stored rows kept, new classes with zero weights and a bias of -10, so they start
    almost never chosen and the heads read exactly as before until training teaches them."""
    out = dict(state)
    for k, v in state.items():
        if k.endswith("cls.weight") and v.shape[0] < n_classes:
            out[k] = torch.cat([v, v.new_zeros(n_classes - v.shape[0], v.shape[1])])
        elif k.endswith("cls.bias") and v.shape[0] < n_classes:
            out[k] = torch.cat([v, v.new_full((n_classes - v.shape[0],), -10.0)])
    return out


def save_glyph_heads(heads: nn.ModuleDict, directory: str | os.PathLike, grids=None, int8: bool = False) -> None:
    """Write `heads` (or only those of `grids`) to DIR/glyph_heads.safetensors: bf16, or with `int8` every
    weight matrix as int8 with one bf16 scale per output row (`<key>.scale`; half the bytes, which is what
    leaves room for a fourth head under the 60 MB budget; on the shipped heads ~1 read character in 2,000
    changed, precision equal within noise: docs/model_card.md). Vectors (biases, norms) stay bf16."""
    from safetensors.torch import save_file

    keep = None if grids is None else {str(g) for g in grids}
    state = {}
    for k, v in heads.state_dict().items():
        if keep is not None and k.split(".", 1)[0] not in keep:
            continue
        v = v.detach().float().cpu()
        if int8 and v.dim() == 2:
            scale = (v.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12).to(torch.bfloat16)  # [out,1]
            state[k] = torch.round(v / scale.float()).clamp(-127, 127).to(torch.int8).contiguous()
            state[k + ".scale"] = scale.contiguous()
        else:
            state[k] = v.to(torch.bfloat16).contiguous()
    save_file(state, os.path.join(directory, FILENAME))


def load_glyph_heads(directory: str | os.PathLike, dim: int, n_classes: int | None = None) -> nn.ModuleDict | None:
    """The heads stored in DIR/glyph_heads.safetensors (fp32), or None when the checkpoint has none. With
    `n_classes` larger than stored, the classifiers are widened (`widen_classes`); by default, as stored."""
    from safetensors.torch import load_file

    path = os.path.join(directory, FILENAME)
    if not os.path.exists(path):
        return None
    raw = load_file(path)
    # int8 matrices (save_glyph_heads(int8=True)) come back as int8 * their per-row scale
    state = {k: v.float() * raw[k + ".scale"].float() if k + ".scale" in raw else v.float()
             for k, v in raw.items() if not k.endswith(".scale")}
    stored = max(v.shape[0] for k, v in state.items() if k.endswith("cls.bias"))
    if n_classes is not None and n_classes < stored:
        raise ValueError(f"{path} has {stored} glyph classes, more than the {n_classes} asked for")
    if n_classes is not None and n_classes > stored:
        state = widen_classes(state, n_classes)
    grids = sorted({int(k.split(".", 1)[0]) for k in state})
    heads = make_glyph_heads(dim, grids, n_classes=n_classes or stored)
    try:
        heads.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path} does not match a decoder of width {dim}: {e}") from e
    return heads


def cell_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """logits (g, g, S, classes) of one page -> log-probabilities per page cell, (ROWS, COLS, classes).
    Every cell is owned by exactly one slot at every grid size, so views at two resolutions can be added."""
    g, n_cls = logits.shape[0], logits.shape[-1]
    table = torch.from_numpy(slot_table(g)).to(logits.device)
    owned = table >= 0
    out = logits.new_zeros(render.ROWS * render.COLS, n_cls, dtype=torch.float32)
    out[table[owned]] = logits.float().log_softmax(-1)[owned]
    return out.view(render.ROWS, render.COLS, n_cls)


def cells_text(cells: np.ndarray) -> str:
    """(ROWS, COLS) glyph classes -> the page text as `render.Page.text` defines it (class 95 -> U+FFFD)."""
    rows = ["".join(_CHARS[row]).rstrip(" ") for row in cells]
    return "\n".join(rows).rstrip("\n")
