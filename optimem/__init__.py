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
from .reader import OpticalReader, PageReader, Reading
from .render import Page, Turn, page_at_tier, render_plain, render_plain_page, render_turns
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
    "OpticalReader",
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
    # renderer
    "Page",
    "Turn",
    "page_at_tier",
    "render_plain",
    "render_plain_page",
    "render_turns",
    "__version__",
]
