"""Compatibility: the store moved to the optimem.store package (archive, records, files, schema, vectors).
Import from optimem.store; this module re-exports its names for code written against optimem.archive."""

from __future__ import annotations

from optimem.store import *
from optimem.store import __all__
