"""A thin wrapper over a `tokenizers` tokenizer.json (byte-level BPE), with special tokens by name.

Our own tokenizers are trained here with `train_tokenizer` and use the official DeepSeek special-token
strings, so the same code handles ours and the official one. Text goes through with special-token
matching off (`encode_special_tokens`), so any string, even one containing "<image>", round-trips
exactly through encode/decode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

__all__ = ["Tokenizer", "train_tokenizer", "SPECIAL_TOKENS"]

# name -> the official DeepSeek strings (ids 0, 1, 2 and 128815 in the official vocabulary)
SPECIAL_TOKENS: dict[str, str] = {
    "bos": "<｜begin▁of▁sentence｜>",
    "eos": "<｜end▁of▁sentence｜>",
    "pad": "<｜▁pad▁｜>",
    "image": "<image>",
}


class Tokenizer:
    """`encode(str) -> list[int]` (no BOS/EOS added), `decode(ids) -> str`, special ids by name."""

    def __init__(self, tk: _HFTokenizer):
        self.tk = tk
        self.tk.encode_special_tokens = True  # text is text: never turn "<image>" in a page into a special id
        self.special: dict[str, int] = {}
        for name, content in SPECIAL_TOKENS.items():
            i = tk.token_to_id(content)
            if i is None:
                raise ValueError(f"tokenizer has no {name} token {content!r}; train it with train_tokenizer or "
                                 "use the official DeepSeek-OCR tokenizer.json")
            self.special[name] = i

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {path}; pass the file or a checkpoint directory holding it")
        return cls(_HFTokenizer.from_file(str(path)))

    @classmethod
    def from_official(cls, directory: str | Path) -> Tokenizer:
        """The official checkpoint's tokenizer: its tokenizer.json, else whatever transformers can build from
        the directory's tokenizer files (local only, never downloads)."""
        d = Path(directory)
        if (d / "tokenizer.json").is_file():
            return cls.from_file(d / "tokenizer.json")
        try:
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the directory named
            raise FileNotFoundError(f"{d} has no tokenizer.json and transformers could not load its tokenizer "
                                    f"files ({e}); copy tokenizer.json from the official checkpoint") from e
        return cls(hf.backend_tokenizer)

    def save(self, path: str | Path) -> None:
        self.tk.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size(with_added_tokens=True)

    @property
    def bos_id(self) -> int:
        return self.special["bos"]

    @property
    def eos_id(self) -> int:
        return self.special["eos"]

    @property
    def pad_id(self) -> int:
        return self.special["pad"]

    @property
    def image_id(self) -> int:
        return self.special["image"]

    def encode(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tk.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        """Special tokens are dropped; everything else decodes byte-exactly."""
        return self.tk.decode(list(ids), skip_special_tokens=True)


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE (GPT-2 style, no normaliser, no prefix space) with the special tokens at ids
    0 (bos), 1 (eos), 2 (pad), 3 (image). Every byte is in the base alphabet, so any UTF-8 text round-trips."""
    specials = [SPECIAL_TOKENS[n] for n in ("bos", "eos", "pad", "image")]
    base = len(pre_tokenizers.ByteLevel.alphabet()) + len(specials)
    if vocab_size < base:
        raise ValueError(f"vocab_size {vocab_size} is below the {base} byte + special tokens; use >= {base}")
    tk = _HFTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(tk)
