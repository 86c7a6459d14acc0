"""The typed records that cross the store's boundary: what goes in (NewTurn, NewPage, RecallUpdate) and what
comes out (TurnRecord, PageRecord, Event, SearchHit, NamespaceInfo, ArchiveStats, CheckReport). All frozen dataclasses;
the store never takes or returns bare tuples or dicts of counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NewTurn",
    "NewPage",
    "RecallUpdate",
    "TurnRecord",
    "PageRecord",
    "Event",
    "SearchHit",
    "NamespaceInfo",
    "ArchiveStats",
    "DamagedPage",
    "CheckReport",
]


@dataclass(frozen=True)
class NewTurn:
    """A verbatim turn to insert: what Memory computed from the caller's input."""

    role: str
    text: str
    timestamp: float
    metadata: str | None  # JSON object, or None
    n_tokens: int


@dataclass(frozen=True)
class NewPage:
    """A page to archive: its PNG bytes, the renderer's layout map (JSON, opaque here) and the turns drawn on
    it, in drawing order."""

    png: bytes
    layout: str
    turn_ids: tuple[int, ...]


@dataclass(frozen=True)
class RecallUpdate:
    """After a recall: a turn's retention at the recall and its new strength."""

    turn_id: int
    retention: float
    strength: float


@dataclass(frozen=True)
class TurnRecord:
    """One turn as the store knows it. `text` is set only while the turn is verbatim (working memory)."""

    id: int
    namespace: str
    seq: int  # 1-based position in the namespace: the 'turns' clock when it was added
    role: str
    timestamp: float
    metadata: dict[str, Any] | None
    n_chars: int
    n_tokens: int
    state: str  # 'verbatim' | 'archived' | 'forgotten'
    strength: float
    last_seq: int  # clock of the last write or recall, in turns ...
    last_time: float  # ... and in seconds
    recalls: int
    pinned: bool
    text: str | None


@dataclass(frozen=True)
class PageRecord:
    """One page image in the archive."""

    id: int
    namespace: str
    tier: str
    file: str  # relative to the store directory
    layout: str  # the renderer's layout map as JSON; opaque to the archive
    created: float
    turn_ids: tuple[int, ...]  # turns drawn on the page (forgotten ones excluded), in drawing order
    sha256: str | None = None  # of the page file, recorded when it was written (None: format 1, read-only)


@dataclass(frozen=True)
class Event:
    """One line of the audit log: kind is add | page_out | recall | tier | forget | pin | unpin | redact."""

    id: int
    time: float
    seq: int
    kind: str
    turn_id: int | None
    page_id: int | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class SearchHit:
    """A turn found by a vector search, with the similarity of its best chunk."""

    turn_id: int
    similarity: float


@dataclass(frozen=True)
class NamespaceInfo:
    """The embedder a namespace was built with."""

    embedder: str
    dim: int


@dataclass(frozen=True)
class ArchiveStats:
    """Counts for one namespace plus the store's size on disk."""

    turns: Mapping[str, int]  # 'verbatim' | 'archived' | 'forgotten' -> count
    pages: Mapping[str, int]  # tier -> count
    visual_tokens: int
    archived_text_tokens: int
    archived_chars: int
    working_tokens: int
    vectors: int
    index_kind: str  # 'flat' | 'hnsw'
    bytes_on_disk: int


@dataclass(frozen=True)
class DamagedPage:
    """A page whose file cannot be trusted, and the live turns drawn on it."""

    page_id: int
    file: str
    problem: str
    turn_ids: tuple[int, ...]


@dataclass(frozen=True)
class CheckReport:
    """What `optimem check` (Memory.check) found in one namespace of a store, and what --repair did."""

    namespace: str
    store_id: str | None
    pages_checked: int
    damaged_pages: tuple[DamagedPage, ...]
    index_problem: str | None  # why the saved FAISS index could not serve (None: fine, or none saved yet)
    index_rebuilt: bool
    unreferenced_files: tuple[str, ...]  # under pages/ (any namespace) or temp files; relative to the store
    quarantined: tuple[str, ...]  # where --repair moved them (relative to the store)

    @property
    def damaged_turns(self) -> tuple[int, ...]:
        return tuple(sorted({t for p in self.damaged_pages for t in p.turn_ids}))

    @property
    def ok(self) -> bool:
        """Nothing is wrong now: no damaged page, a usable index, no unreferenced file left in place."""
        return (
            not self.damaged_pages
            and (self.index_problem is None or self.index_rebuilt)
            and len(self.quarantined) == len(self.unreferenced_files)
        )
