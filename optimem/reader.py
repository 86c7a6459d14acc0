"""Page images -> text through an `ocr_model` checkpoint, with a confidence; imported lazily by Memory.

    PageReader          protocol Memory needs: read(images, tier) -> [Reading], count_tokens(text)
    OpticalReader       any ocr_model checkpoint: encode at the page's tier, greedy decode, confidence
    shipped_model_dir() the model shipped in ocr_model/weights/<name>/, or None
    load_reader(model)  None | checkpoint path | (model, tokenizer) | PageReader  ->  PageReader

Confidence of a reading = exp(mean log p) over the generated tokens: the geometric mean of the
probability the model gave each token it chose (taken before the n-gram ban). 1.0 = certain of every
token; a random-weight model gives ~1/vocab. A reading that hit max_new_tokens without EOS (often a
repetition loop) has complete=False.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from optimem.errors import ModelError, ModelNotFoundError

__all__ = ["Reading", "PageReader", "OpticalReader", "shipped_model_dir", "load_reader"]


@dataclass(frozen=True)
class Reading:
    """The text a reader got from one page image."""

    text: str
    confidence: float  # geometric mean token probability in [0, 1]
    complete: bool  # ended with EOS (False: cut at max_new_tokens)
    n_tokens: int


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


def shipped_model_dir() -> Path | None:
    """The shipped checkpoint: ocr_model.weights.SHIPPED_MODEL if set, else the first directory (by name)
    under ocr_model/weights/ that holds a config.json and safetensors shards."""
    try:
        import ocr_model
    except ImportError:
        return None
    root = Path(ocr_model.__file__).parent / "weights"
    try:
        from ocr_model import weights as w

        named = getattr(w, "SHIPPED_MODEL", None)
    except ImportError:
        named = None
    if named:
        d = Path(named) if Path(named).is_absolute() else root / named
        return d if (d / "config.json").is_file() else None
    if not root.is_dir():
        return None
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if (d / "config.json").is_file() and any(d.glob("*.safetensors")):
            return d
    return None


class OpticalReader:
    """Reads pages with an ocr_model OpticalModel + Tokenizer: encode at the tier, batched greedy decode."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_new_tokens: int | None = None,
        batch_size: int = 4,
        name: str = "ocr_model",
    ) -> None:
        import torch

        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.name = batch_size, name
        # a full page is 75 x 38 = 2850 characters, ~1000 BPE tokens; the model's context may cap it lower
        self.max_new_tokens = max_new_tokens or 1200
        self._torch = torch
        self._lock = threading.Lock()  # one forward pass at a time: torch modules are not re-entrant

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "cpu", **kw: Any) -> OpticalReader:
        """Load a directory written by ocr_model.weights.save_pretrained."""
        try:
            from ocr_model.weights import load_pretrained
        except ImportError as e:
            raise ModelError(
                f"cannot import ocr_model to load {path}: {e}; install optimem with its ocr_model package"
            ) from e
        try:
            model, tok = load_pretrained(path, device=device)
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load the OCR model from {path}: {e}") from e
        return cls(model, tok, name=kw.pop("name", Path(path).name), **kw)

    def encode(self, images: Sequence[Image.Image], tier: str) -> Any:
        """Visual tokens [B, Tv, D] for page images at `tier` (Tv = h*(w+1)+1, h = side/64)."""
        from ocr_model.image_process import to_tensor

        pixels = to_tensor(list(images), tier)  # [B,3,S,S]
        return self.model.encode(pixels.to(self.model.device))

    def _room(self, visual_len: int) -> int:
        cap = self.model.cfg.decoder.max_positions - 1 - visual_len  # BOS + visual tokens come first
        return max(1, min(self.max_new_tokens, cap))

    def read(self, images: Sequence[Image.Image], tier: str) -> list[Reading]:
        out: list[Reading] = []
        with self._lock, self._torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                visual = self.encode(images[s : s + self.batch_size], tier)  # [b,Tv,D]
                gens = self.model.generate(visual, max_new_tokens=self._room(visual.shape[1]))
                for g in gens:
                    ids = [t for t in g.token_ids if t != self.tokenizer.eos_id]
                    conf = math.exp(sum(g.logprobs) / len(g.logprobs)) if g.logprobs else 0.0
                    out.append(Reading(self.tokenizer.decode(ids), conf, bool(g.eos), len(ids)))
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))


def load_reader(model: Any = None) -> PageReader:
    """Turn Memory's `model=` argument into a PageReader.

    None -> the shipped model (ModelNotFoundError if there is none); a str/Path -> a checkpoint directory;
    a (model, tokenizer) pair as ocr_model.weights.load_pretrained returns; or any PageReader.
    """
    if model is None:
        d = shipped_model_dir()
        if d is None:
            raise ModelNotFoundError(
                "no OCR model was passed and none is shipped in ocr_model/weights/<name>/. Pass one: "
                "Memory(path, model='path/to/checkpoint') (a directory written by ocr_model.weights.save_pretrained), "
                "model=load_pretrained(dir), or model=<your PageReader>"
            )
        return OpticalReader.from_pretrained(d)
    if isinstance(model, (str, Path)):
        if not Path(model).is_dir():
            raise ModelNotFoundError(f"model directory {model} does not exist; pass a checkpoint directory")
        return OpticalReader.from_pretrained(model)
    if isinstance(model, tuple) and len(model) == 2:
        return OpticalReader(*model)
    if isinstance(model, PageReader):
        return model
    raise ModelError(
        "model must be None, a checkpoint directory, a (model, tokenizer) pair or a PageReader; "
        f"got {type(model).__name__}"
    )
