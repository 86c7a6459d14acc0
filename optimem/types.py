"""The frozen dataclasses Memory returns: Recollection (a recalled turn), Stats, ConsolidationReport."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["TurnId", "Recollection", "Stats", "ConsolidationReport"]

TurnId = int


@dataclass(frozen=True)
class Recollection:
    """One remembered turn, as recall() or get() returns it.

    text is the turn verbatim while it is in working memory, else what the model read back from its
    page(s), errors included; None when recall(decode=False) skipped reading. confidence is 1.0 for a
    verbatim turn, the reader's confidence for a decoded one: the geometric mean of the model's
    probabilities over the turn's own cells of its page(s) (the page's, for a decoder reading; see
    ocr_model.reader), None when not decoded. verified / verified_precision / verified_tier say how the turn
    read back when the store last checked it (at page-out, and after each fading step; optimem.pageout):
    True when that reading was exactly its text; None while the turn is verbatim.
    score and similarity are None for get().
    damaged: the turn's page is missing, altered or unreadable (optimem.PageDamagedError says which);
    then text and confidence are None. Only recall() returns such turns; get() raises.
    """

    turn_id: TurnId
    role: str
    text: str | None
    tier: str  # 'verbatim' | 'large' | 'base' | 'small' | 'tiny' | 'gist'
    confidence: float | None
    score: float | None  # similarity minus a retention penalty (optimem.forgetting.combine_score)
    similarity: float | None  # cosine similarity of the query and the turn's best chunk
    retention: float  # R = exp(-t/S) when it was recalled (before this recall strengthened it)
    strength: float  # S, in the policy's clock unit (before this recall strengthened it)
    age_turns: int  # turns added to the namespace since this one
    age_seconds: float  # seconds since the turn's timestamp
    timestamp: float
    pinned: bool
    metadata: Mapping[str, Any] | None
    verified: bool | None = None  # read back exactly at the last check (None: verbatim, never paged out)
    verified_precision: float | None = None  # character precision of that reading
    verified_tier: str | None = None  # the tier it was read at
    damaged: bool = False  # a page of this turn failed its integrity check: no text (optimem.errors.PageDamagedError)


@dataclass(frozen=True)
class Stats:
    """What a namespace holds. visual_tokens / archived_text_tokens is the optical compression."""

    namespace: str
    turns_verbatim: int
    turns_archived: int
    turns_forgotten: int
    working_tokens: int  # text tokens in working memory
    pages: Mapping[str, int]  # pages per tier
    visual_tokens: int  # tokens the archive's pages cost at their tiers (base 256, small 100, tiny 64, gist 36)
    archived_text_tokens: int  # text tokens the archived turns had when they were paged out
    vectors: int  # retrieval vectors (one per chunk of a turn)
    index_kind: str  # 'flat' (exact) or 'hnsw'
    bytes_on_disk: int  # the whole store directory (all namespaces)
    exact_share: Mapping[str, float] | None = None  # per tier: share of archived turns that read back exactly
    unarchivable: int = 0  # turns kept verbatim because no drawing of them read back exactly (this session)

    @property
    def compression(self) -> float | None:
        """Text tokens per visual token over the archive (None while nothing is archived)."""
        return self.archived_text_tokens / self.visual_tokens if self.visual_tokens else None


@dataclass(frozen=True)
class ConsolidationReport:
    """What one consolidate() changed."""

    pages_downgraded: Mapping[str, int]  # "base->small": n, ...
    turns_forgotten: tuple[TurnId, ...]
    pages_deleted: int
    pages_damaged: tuple[int, ...] = ()  # page ids skipped because their files are damaged (see Memory.check)
