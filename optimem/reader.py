"""What Memory reads pages with: the PageReader protocol and the loader behind Memory(model=...).

    PageReader          protocol Memory needs: read(images, tier) -> [Reading], count_tokens(text)
                        optional: a reader with `reads_rows = True` also takes read(images, tier, rows=[...]),
                        one list of row indices (or None) per image, and reads only those rows (the others
                        blank); Memory then reads just the rows of the turns a recall or get() asks for;
                        with `reads_spans = True` too, an entry may hold (row, first col, end col) spans, and
                        Memory asks only for the cells of those turns (not the rest of rows they share)
    load_reader(model)  None | checkpoint path | (model, tokenizer) | PageReader  ->  PageReader

The model's own adapter (OpticalReader: glyph heads, views, the decoder) lives beside the model, in
ocr_model.reader; Reading, OpticalReader, DEFAULT_VIEWS and shipped_model_dir are re-exported here. Loading
a checkpoint imports torch; importing this module does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from ocr_model.reader import DEFAULT_VIEWS, READ_MODES, OpticalReader, Reading, ReaderError, load, shipped_model_dir
from optimem.errors import ModelError, ModelNotFoundError

__all__ = ["DEFAULT_VIEWS", "READ_MODES", "OpticalReader", "PageReader", "Reading", "load_reader", "shipped_model_dir"]


@runtime_checkable
class PageReader(Protocol):
    """What Memory needs from a model. `name` identifies it in logs and stats."""

    name: str

    def read(self, images: Sequence[Image.Image], tier: str) -> list[Reading]:
        """One Reading per page image; every image is already at `tier`'s size."""
        ...

    def count_tokens(self, text: str) -> int:
        """Text tokens of `text` in the model's vocabulary (the working-memory budget is counted in these)."""
        ...


def load_reader(model: Any = None, device: str = "cpu") -> PageReader:
    """Turn Memory's `model=` argument into a PageReader.

    None -> the shipped model (ModelNotFoundError if there is none); a str/Path -> a checkpoint directory;
    a (model, tokenizer) pair as ocr_model.weights.load_pretrained returns; or any PageReader. `device`
    places a model loaded here (the shipped one or a directory): "cpu", "cuda", "cuda:N".
    """
    if model is None:
        d = shipped_model_dir()
        if d is None:
            raise ModelNotFoundError(
                "no OCR model was passed and none is shipped in ocr_model/weights/<name>/. Pass one: "
                "Memory(path, model='path/to/checkpoint') (a directory written by ocr_model.weights.save_pretrained), "
                "model=load_pretrained(dir), or model=<your PageReader>"
            )
        return _from_pretrained(d, device)
    if isinstance(model, (str, Path)):
        if not Path(model).is_dir():
            raise ModelNotFoundError(f"model directory {model} does not exist; pass a checkpoint directory")
        return _from_pretrained(model, device)
    if isinstance(model, tuple) and len(model) == 2:
        try:
            return OpticalReader(*model)
        except ReaderError as e:
            raise ModelError(str(e)) from e
    if isinstance(model, PageReader):
        return model
    raise ModelError(
        "model must be None, a checkpoint directory, a (model, tokenizer) pair or a PageReader; "
        f"got {type(model).__name__}"
    )


def _from_pretrained(path: str | Path, device: str = "cpu") -> OpticalReader:
    try:
        return load(path, device=device)
    except ImportError as e:
        raise ModelError(f"cannot import what ocr_model needs to load {path}: {e}; install optimem with torch") from e
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the OCR model from {path}: {e}") from e
