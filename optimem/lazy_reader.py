"""Open a Memory without loading the OCR model: the model is loaded on the first page it must read.

    lazy_reader(model) -> PageReader     what Memory does with its `model=` argument

A checkpoint directory (or the shipped model, for model=None) with a tokenizer.json becomes a LazyReader:
count_tokens (the working-memory budget, needed by every add) uses that tokenizer.json through the
`tokenizers` package alone, and read() loads the full checkpoint (torch, weights, glyph heads) the first time
a page is read back, i.e. the first recall or get of an archived turn. So stats, add (page-outs included:
writing a page needs the renderer, not the model), consolidate and recall(decode=False) never import torch.
A broken checkpoint is then reported by that first read, as optimem.errors.ModelError.

Anything else (a (model, tokenizer) pair, a PageReader, a directory without tokenizer.json, a path that is
not a directory, None with no shipped model) goes through optimem.reader.load_reader at once, with its errors.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from optimem.reader import PageReader, Reading, load_reader

__all__ = ["LazyReader", "lazy_reader"]


class LazyReader:
    """A PageReader for a checkpoint directory that loads the model on the first read() (see module doc).
    Attributes of the loaded reader (grids, grid_views, views, mode, ...) are reached through it, loading it."""

    reads_rows = True  # the loaded OpticalReader reads some rows of a page when asked (read(..., rows=))
    reads_spans = True  # ... or some cells of a row: rows= may hold (row, first col, end col) spans
    reads_tokens = True  # ... and reuses kept token grids (read(..., tokens=))

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from tokenizers import Tokenizer

        self.path, self.device = Path(path), device
        self.name = self.path.name
        self._tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self._tokenizer.encode_special_tokens = True  # as ocr_model.tokenizer does: text is text
        self._reader: PageReader | None = None
        self._fingerprint: str | None = None
        self._load_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (by a read, or by reaching one of its attributes)."""
        return self._reader is not None

    def load(self) -> PageReader:
        """The real reader (optimem.reader.OpticalReader), loaded now if it was not yet."""
        with self._load_lock:
            if self._reader is None:
                self._reader = load_reader(self.path, device=self.device)
            return self._reader

    @property
    def fingerprint(self) -> str:
        """What token grids read with this checkpoint are keyed by (hashes its files; loads no model)."""
        if self._fingerprint is None:
            from ocr_model.reader import weights_fingerprint

            self._fingerprint = weights_fingerprint(self.path)
        return self._fingerprint

    def read(self, images: Sequence[Image.Image], tier: str, *, rows: Any = None, tokens: Any = None) -> list[Reading]:
        kw = {k: v for k, v in (("rows", rows), ("tokens", tokens)) if v is not None}
        return self.load().read(images, tier, **kw)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)


def _shipped_dir() -> Path | None:
    """The shipped model's directory (ocr_model.reader.shipped_model_dir: imports no torch)."""
    from ocr_model.reader import shipped_model_dir

    return shipped_model_dir()


def lazy_reader(model: Any = None, device: str = "cpu") -> PageReader:
    """Memory's `model=` argument -> a LazyReader where it can be one, else optimem.reader.load_reader(model)
    (`device`: where a model loaded from a directory runs)."""
    if model is None:
        path = _shipped_dir()
    elif isinstance(model, (str, Path)):
        path = Path(model)
    else:
        return load_reader(model, device=device)
    if path is None or not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        return load_reader(model, device=device)  # raises ModelNotFoundError / ModelError saying what is missing
    return LazyReader(path, device)
