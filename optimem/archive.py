"""Compatibility: the store moved to the optimem.store package (archive, records, files, schema, vectors).
Import from optimem.store; this module re-exports its names for code written against optimem.archive."""

from __future__ import annotations

from optimem.store import *  # noqa: F401,F403
from optimem.store import __all__  # noqa: F401
