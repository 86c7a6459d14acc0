"""Glyph heads: each visual token predicts the glyph classes of its own page cells.

The classes and the token -> cell geometry are part of the page format (ocr_model.page.glyphs): every
character a shipped font draws has a class, plus blank, OTHER (a replacement box, read as U+FFFD) and
WIDE_RIGHT (the right half of a two-cell character). A `GlyphHead` maps every token (the projector output,
before the decoder) to S slot vectors and each slot to one class.

Training uses the heads as a dense auxiliary loss from step 0 (ocr_model/train.py). At read time they are a
second, non-autoregressive reader: argmax per cell, rows right-stripped and joined by newlines, which is
exactly how `Page.text` is defined (ocr_model.reader uses them). Heads trained on a prefix of the class table
(run s2: 96 classes, run s3: 285) load and read as they are; `load_glyph_heads(..., n_classes=...)` widens
them for training, new classes starting silent.

Heads are stored beside a checkpoint as `glyph_heads.safetensors` (keys `<grid>.slots.weight`, ...); the
official DeepSeek-OCR checkpoint has none, and then only the decoder reads.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ocr_model import page as pg

from ocr_model.page.glyphs import (  # noqa: F401 (the class table, re-exported for the heads' users)
    ASCII_CLASSES, EXTRA_CHARS, OTHER, S3_CLASSES, WIDE_RIGHT, cells_text, glyph_classes, slot_table)
from ocr_model.page.glyphs import n_classes as n_classes_

FILENAME = "glyph_heads.safetensors"


class GlyphHead(nn.Module):
    """Per visual token: S slot vectors -> glyph class logits. One head per token-grid size (slot sets differ)."""

    def __init__(self, dim: int, n_slots: int, slot_dim: int = 64, n_classes: int | None = None):
        super().__init__()
        n_classes = n_classes or n_classes_()
        self.n_slots, self.slot_dim = n_slots, slot_dim
        self.slots = nn.Linear(dim, n_slots * slot_dim)
        self.norm = nn.LayerNorm(slot_dim)
        self.cls = nn.Linear(slot_dim, n_classes)

    def features(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, h, w, D) token grid -> (B, h, w, S, E) slot features, before the classifier."""
        B, h, w, _ = grid.shape
        x = self.slots(grid).view(B, h, w, self.n_slots, self.slot_dim)  # (B, h, w, S, E)
        return F.gelu(self.norm(x))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.cls(self.features(grid))  # (B, h, w, S, classes)


def make_glyph_heads(dim: int, grids, n_classes: int | None = None) -> nn.ModuleDict:
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
    out = logits.new_zeros(pg.ROWS * pg.COLS, n_cls, dtype=torch.float32)
    out[table[owned]] = logits.float().log_softmax(-1)[owned]
    return out.view(pg.ROWS, pg.COLS, n_cls)

