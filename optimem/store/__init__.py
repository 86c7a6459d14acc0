"""optimem.store: the store directory (SQLite + FAISS + page PNGs) that a Memory keeps its turns in.

    archive.py   Archive: one namespace of a store opened for reading or writing (the only entry point)
    opening.py   creating, identifying, upgrading and sweeping a store directory as it is opened
    records.py   the frozen dataclasses that cross its boundary (NewTurn, NewPage, TurnRecord, ...)
    files.py     atomic writes, the writer's lock, the manifest
    schema.py    the SQLite schema and connections
    vectors.py   VectorIndex: the FAISS index of a namespace
    check.py     `optimem check`: verify a namespace, repair what can be repaired
"""

from __future__ import annotations

from optimem.store.archive import FORMAT_VERSION, Archive, validate_namespace
from optimem.store.records import (
    ArchiveStats,
    CheckReport,
    DamagedPage,
    Event,
    NamespaceInfo,
    NewPage,
    NewTurn,
    PageRecord,
    RecallUpdate,
    SearchHit,
    TurnRecord,
)
from optimem.store.vectors import HNSW_THRESHOLD, VectorIndex

__all__ = [
    "FORMAT_VERSION",
    "HNSW_THRESHOLD",
    "Archive",
    "ArchiveStats",
    "CheckReport",
    "DamagedPage",
    "Event",
    "NamespaceInfo",
    "NewPage",
    "NewTurn",
    "PageRecord",
    "RecallUpdate",
    "SearchHit",
    "TurnRecord",
    "VectorIndex",
    "validate_namespace",
]
