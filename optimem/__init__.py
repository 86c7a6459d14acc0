"""optimem: long-context optical memory for LLM agents.

    from optimem import Memory
    with Memory("agent.optimem") as memory:
        memory.add({"role": "user", "content": "My locker code is 4417."})
        hits = memory.recall("what is the locker code?", k=5)
"""

from __future__ import annotations

from .embed import E5Embedder, Embedder, HashingEmbedder, MiniLMEmbedder
from .errors import (
    EmbedderError,
    InvalidInputError,
    InvalidNamespaceError,
    ModelError,
    ModelNotFoundError,
    NotFoundError,
    OptimemError,
    PageDamagedError,
    ReadOnlyError,
    StoreClosedError,
    StoreError,
    StoreFormatError,
    StoreFullError,
    StoreLockedError,
)
from .forgetting import ForgettingPolicy
from .memory import Memory
from .reader import PageReader, Reading
from ocr_model.page import Turn
from .types import ConsolidationReport, Recollection, Stats, TurnId

__version__ = "0.1.0"

__all__ = [
    # memory
    "Memory",
    "Recollection",
    "Stats",
    "ConsolidationReport",
    "TurnId",
    "ForgettingPolicy",
    # plug-ins
    "Embedder",
    "E5Embedder",
    "MiniLMEmbedder",
    "HashingEmbedder",
    "PageReader",
    "Reading",
    # errors
    "OptimemError",
    "InvalidInputError",
    "InvalidNamespaceError",
    "NotFoundError",
    "StoreError",
    "StoreLockedError",
    "StoreFormatError",
    "StoreClosedError",
    "ReadOnlyError",
    "PageDamagedError",
    "StoreFullError",
    "EmbedderError",
    "ModelError",
    "ModelNotFoundError",
    # the turn type add() takes (the page format itself: ocr_model.page; the model's reader: ocr_model.reader)
    "Turn",
    "__version__",
]
