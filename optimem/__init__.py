"""optimem: long-context optical memory for LLM agents."""

from __future__ import annotations

from .render import Page, Turn, page_at_tier, render_plain, render_plain_page, render_turns

__version__ = "0.1.0"

__all__ = [
    "Page",
    "Turn",
    "page_at_tier",
    "render_plain",
    "render_plain_page",
    "render_turns",
    "__version__",
]
