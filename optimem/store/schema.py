"""The SQLite side of the store: the schema, and connections opened the way the store needs them.

Tables: meta (key/value: schema_version), namespaces (embedder, dim, the 'turns' clock seq, vec_gen bumped
by every change to the namespace's vectors), turns, working (text of verbatim turns only), pages,
turn_pages, vectors (float32 blobs), events (the audit log). A writer's connection runs in WAL mode with
synchronous=FULL (a returned write survives kill -9 and power loss), secure_delete=ON (freed bytes are
zeroed, so deleted turn text leaves no trace) and temp_store=MEMORY (no temp files on disk).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "SCHEMA", "connect"]

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY, embedder TEXT NOT NULL, dim INTEGER NOT NULL, created REAL NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,            -- turns added so far: the 'turns' clock
    vec_gen INTEGER NOT NULL DEFAULT 0         -- bumped by every change to the namespace's vectors
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL REFERENCES namespaces(name),
    seq INTEGER NOT NULL, role TEXT NOT NULL, timestamp REAL NOT NULL, metadata TEXT,
    n_chars INTEGER NOT NULL, n_tokens INTEGER NOT NULL, state TEXT NOT NULL,
    strength REAL NOT NULL, last_seq INTEGER NOT NULL, last_time REAL NOT NULL,
    recalls INTEGER NOT NULL DEFAULT 0, pinned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS turns_ns_state ON turns(namespace, state, seq);
CREATE TABLE IF NOT EXISTS working (
    turn_id INTEGER PRIMARY KEY REFERENCES turns(id), namespace TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, tier TEXT NOT NULL,
    file TEXT NOT NULL, layout TEXT NOT NULL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pages_ns ON pages(namespace, tier);
CREATE TABLE IF NOT EXISTS turn_pages (
    turn_id INTEGER NOT NULL REFERENCES turns(id), page_id INTEGER NOT NULL REFERENCES pages(id),
    namespace TEXT NOT NULL, part INTEGER NOT NULL, PRIMARY KEY (turn_id, page_id)
);
CREATE INDEX IF NOT EXISTS turn_pages_page ON turn_pages(page_id);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, turn_id INTEGER NOT NULL REFERENCES turns(id),
    chunk INTEGER NOT NULL, vec BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_turn ON vectors(turn_id);
CREATE INDEX IF NOT EXISTS vectors_ns ON vectors(namespace);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, time REAL NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, turn_id INTEGER, page_id INTEGER, detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ns ON events(namespace, id);
"""


def connect(db_path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection to the store's database; a writer's creates the tables if missing."""
    if read_only:
        uri = f"file:{db_path}?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
    else:
        db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA secure_delete=ON")  # freed bytes are zeroed: deleted turn text leaves no trace
        db.execute("PRAGMA synchronous=FULL")  # a returned add survives kill -9 and power loss
        db.execute("PRAGMA temp_store=MEMORY")  # no temp files on disk
        db.executescript(SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    return db
