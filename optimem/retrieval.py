"""What a turn is remembered by, and how recall ranks the turns the index finds.

A turn's text is gone once it is paged out, so everything retrieval will ever know about it is decided
when it is added. Memory embeds, for every chunk of a turn (`document_texts`):

    "<previous speaker>: <last 300 characters of the previous turn>\\n<speaker>: <chunk>"

  speaker   the message's `name` when it has one (who said it: "Caroline"), else its role ("user");
  previous  the turn added just before it in the namespace, while that one is still text (the working
            memory keeps the newest turns, so in practice always but for the first turn); only the first
            chunk of a long turn carries it;
  chunks    `embed.chunk_text` (~1,000 characters each); a turn of more than `MAX_CHUNKS` chunks is
            embedded densely from `MAX_CHUNKS` of them spread evenly over it (first and last included),
            which bounds the time and memory one add can take. The lexical half of the default embedder
            (`embed.HybridEmbedder`) hashes every word of the turn (`document_words`: each vector's words run
            on to the next embedded chunk), so the rest of a long turn stays findable by its words.

A query is embedded from at most `MAX_QUERY_CHARS` characters (`query_text`): its first and last
MAX_QUERY_CHARS / 2 characters, the question of a long prompt usually being at one end.

Ranking (`rank`): the index returns the best candidates by similarity; each candidate's score is

    score = sim + next_weight * (sim_next - floor) - retention_weight * (1 - R) * spread

  sim        the turn's best chunk similarity to the query (inner product of L2-normalised vectors)
  sim_next   the similarity of the turn added right after it (whose vector embeds this turn as context:
             an answer often says what the question was about); `floor` when that turn is not a candidate
  floor      the lowest similarity among the candidates, so the term is >= 0
  spread     best - worst similarity among the candidates: the retention penalty in the query's own units
             (docs/forgetting.md#search-score)

Weights and their tuning: docs/forgetting.md#search-score and benchmarks/locomo_recall.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimem.embed import chunk_text
from optimem.errors import InvalidInputError
from optimem.forgetting import ForgettingPolicy, combine_score

__all__ = [
    "CONTEXT_CHARS",
    "MAX_CHUNKS",
    "MAX_QUERY_CHARS",
    "NEXT_WEIGHT",
    "IDF_SAMPLE",
    "Candidate",
    "LexicalIdf",
    "speaker",
    "document_texts",
    "document_words",
    "query_text",
    "spread_chunks",
    "rank",
]

CONTEXT_CHARS = 300  # characters of the previous turn embedded with a turn (its end: what was just said)
MAX_CHUNKS = 8  # chunks of one turn that are embedded densely (~8,000 characters; docs/api.md#embedders)
MAX_QUERY_CHARS = 2000  # characters of a query that are embedded (~500 tokens: one E5 window)
IDF_SAMPLE = 4096  # stored vectors the lexical document frequencies are estimated from
NEXT_WEIGHT = 1.0  # weight of the next turn's similarity in the score (tuned on LoCoMo conversations 5-9)


def speaker(role: str, metadata: Mapping[str, Any] | None) -> str:
    """Who said a turn, as embedded: the message's `name` (stored in its metadata) or else its role."""
    name = (metadata or {}).get("name")
    return str(name).strip() if isinstance(name, str) and name.strip() else role


def _picks(n: int, max_chunks: int) -> list[int]:
    """Indices of at most max_chunks of n chunks, evenly spread, first and last included."""
    if max_chunks < 1:
        raise InvalidInputError(f"max_chunks must be >= 1, got {max_chunks}")
    if n <= max_chunks:
        return list(range(n))
    if max_chunks == 1:
        return [0]
    return sorted({round(i * (n - 1) / (max_chunks - 1)) for i in range(max_chunks)})


def spread_chunks(chunks: Sequence[str], max_chunks: int = MAX_CHUNKS) -> list[str]:
    """At most max_chunks of `chunks`, evenly spread, first and last included, in order."""
    return [chunks[i] for i in _picks(len(chunks), max_chunks)]


def _with_context(docs: list[str], previous: tuple[str, str] | None) -> list[str]:
    if previous is not None and previous[1].strip():
        prev_who, prev_text = previous
        docs[0] = f"{prev_who}: {prev_text[-CONTEXT_CHARS:]}\n{docs[0]}"
    return docs


def document_texts(
    text: str,
    who: str,
    previous: tuple[str, str] | None = None,
    *,
    max_chunks: int = MAX_CHUNKS,
) -> list[str]:
    """The texts embedded densely for one turn (one per retrieval vector). previous: (speaker, text) of the
    turn before it, or None."""
    chunks = chunk_text(text)
    return _with_context([f"{who}: {chunks[i]}" for i in _picks(len(chunks), max_chunks)], previous)


def document_words(
    text: str,
    who: str,
    previous: tuple[str, str] | None = None,
    *,
    max_chunks: int = MAX_CHUNKS,
) -> list[str]:
    """The texts hashed into the lexical half of the same vectors: like document_texts, but each vector's
    text runs on to the next embedded chunk, so every word of a long turn is in some vector."""
    chunks = chunk_text(text)
    picks = _picks(len(chunks), max_chunks)
    ends = picks[1:] + [len(chunks)]
    return _with_context([f"{who}: " + " ".join(chunks[a:b]) for a, b in zip(picks, ends)], previous)


def query_text(query: str, max_chars: int = MAX_QUERY_CHARS) -> str:
    """The part of a query that is embedded: all of it up to max_chars, else its first and last halves."""
    if len(query) <= max_chars:
        return query
    half = max_chars // 2
    return query[:half] + "\n" + query[-half:]


@dataclass(frozen=True)
class Candidate:
    """One turn the index found: its best similarity, its position in the namespace, its retention."""

    turn_id: int
    similarity: float
    seq: int
    retention: float


def rank(
    candidates: Sequence[Candidate],
    policy: ForgettingPolicy,
    *,
    next_weight: float = NEXT_WEIGHT,
) -> list[tuple[float, Candidate]]:
    """(score, candidate) pairs, best first, by the rule in the module docstring (the retention part is
    forgetting.combine_score)."""
    if not candidates:
        return []
    sims = [c.similarity for c in candidates]
    floor, spread = min(sims), max(sims) - min(sims)
    by_seq = {c.seq: c.similarity for c in candidates}
    scored = [
        (
            combine_score(c.similarity, c.retention, policy, spread=spread)
            + next_weight * (by_seq.get(c.seq + 1, floor) - floor),
            c,
        )
        for c in candidates
    ]
    scored.sort(key=lambda x: -x[0])
    return scored


class LexicalIdf:
    """Inverse document frequency of the lexical buckets of a hybrid vector (embed.HybridEmbedder), so a
    query's rare words count more than its common ones.

    df[b] = share of stored vectors whose lexical half is non-zero in bucket b, estimated from a random
    sample of up to IDF_SAMPLE stored vectors (exact below that) and re-estimated once the namespace has
    grown by 10% since; idf[b] = ln(1 + 1 / df[b]) (df floored at one vector of the sample). `weigh` scales
    the query's lexical half by idf and gives it back its former norm, so the embedder's lexical weight keeps
    its meaning. Only bucket counts are kept (in RAM), no words.
    """

    def __init__(self, dense_dim: int, lexical_dim: int) -> None:
        self.dense_dim, self.lexical_dim = dense_dim, lexical_dim
        self.idf: np.ndarray | None = None
        self.fitted_on = 0  # vectors in the namespace when the sample was drawn
        self.added_since = 0

    def stale(self) -> bool:
        """True before the first fit and once vectors added since the fit pass 10% of the ones it saw."""
        return self.idf is None or self.added_since > 0.1 * self.fitted_on

    def fit(self, sample: np.ndarray, total: int) -> None:
        lex = sample[:, self.dense_dim : self.dense_dim + self.lexical_dim]
        df = np.maximum((lex != 0).sum(axis=0), 1).astype(np.float64) / max(len(lex), 1)
        self.idf = np.log1p(1.0 / df).astype(np.float32)
        self.fitted_on, self.added_since = total, 0

    def weigh(self, query: np.ndarray) -> np.ndarray:
        if self.idf is None:
            return query
        q = np.array(query, dtype=np.float32)
        lex = q[self.dense_dim :]
        norm = float(np.linalg.norm(lex))
        if norm == 0.0:
            return q
        weighted = lex * self.idf
        q[self.dense_dim :] = weighted * (norm / max(float(np.linalg.norm(weighted)), 1e-12))
        return q
