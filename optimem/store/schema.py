"""The SQLite side of the store: the schema, and connections opened the way the store needs them.

Tables: meta (key/value: schema_version, store_id), namespaces (embedder, dim, the 'turns' clock seq,
vec_gen bumped by every change to the namespace's vectors, and the SHA-256, generation and dead ids of the
index file last written), turns, working (text of verbatim turns only), pages (with the SHA-256 of the page
file), turn_pages, vectors (float32 blobs), events (the audit log), pending_files (page files about to be
written: a crash leaves them orphaned, and only they may be swept) and dead_files (page files a committed
transaction dropped, deleted right after it).

Schema versions: 1 (optimem 0.1: no hashes, no file journal), 2 (this one). `migrate` upgrades 1 -> 2 in
place; optimem.store.archive hashes the existing page files when it does. A writer's connection runs in WAL mode with
synchronous=FULL (a returned write survives kill -9 and power loss), secure_delete=ON (freed bytes are
zeroed, so deleted turn text leaves no trace) and temp_store=MEMORY (no temp files on disk).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "SCHEMA", "connect", "prepare_writer", "schema_version", "migrate", "get_meta", "set_meta"]

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY, embedder TEXT NOT NULL, dim INTEGER NOT NULL, created REAL NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,            -- turns added so far: the 'turns' clock
    vec_gen INTEGER NOT NULL DEFAULT 0,        -- bumped by every change to the namespace's vectors
    index_sha TEXT, index_gen INTEGER, index_dead TEXT  -- the index file last written: hash, vec_gen, dead ids
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
    file TEXT NOT NULL, layout TEXT NOT NULL, created REAL NOT NULL,
    sha256 TEXT                                -- of the page file; NULL only if it was missing at the upgrade
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
CREATE TABLE IF NOT EXISTS pending_files (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS dead_files (name TEXT PRIMARY KEY);
"""

_V1_TO_V2 = """
ALTER TABLE namespaces ADD COLUMN index_sha TEXT;
ALTER TABLE namespaces ADD COLUMN index_gen INTEGER;
ALTER TABLE namespaces ADD COLUMN index_dead TEXT;
ALTER TABLE pages ADD COLUMN sha256 TEXT;
"""


def connect(db_path: Path, *, read_only: bool, immutable: bool = False) -> sqlite3.Connection:
    """A connection to the store's database that has written nothing yet (call `prepare_writer` once the
    database is known to be this store's). immutable=True (read-only media, where SQLite cannot create
    its -shm file) reads the database file as it is, without the WAL."""
    if read_only:
        uri = f"file:{db_path}?mode=ro" + ("&immutable=1" if immutable else "")
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
    else:
        db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    return db


def prepare_writer(db: sqlite3.Connection) -> None:
    """WAL mode, the durability and privacy pragmas, and the tables that are missing (a new database gets
    schema_version 2; an old one keeps its version until `migrate`)."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA secure_delete=ON")  # freed bytes are zeroed: deleted turn text leaves no trace
    db.execute("PRAGMA synchronous=FULL")  # a returned add survives kill -9 and power loss
    db.execute("PRAGMA temp_store=MEMORY")  # no temp files on disk
    db.executescript(SCHEMA)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def get_meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def schema_version(db: sqlite3.Connection) -> int:
    """The database's schema version (1 when meta has none: optimem 0.1 wrote 1)."""
    try:
        v = get_meta(db, "schema_version")
    except sqlite3.OperationalError:  # no meta table: not one of our databases
        return 0
    return int(v) if v is not None and v.isdigit() else 1


def migrate(db: sqlite3.Connection) -> bool:
    """Upgrade the schema in place (inside the caller's transaction). Returns True if it changed anything;
    the caller then fills what the new columns need (page hashes)."""
    version = schema_version(db)
    if version >= SCHEMA_VERSION:
        return False
    if version == 1:
        for stmt in filter(str.strip, _V1_TO_V2.split(";")):
            db.execute(stmt)
    set_meta(db, "schema_version", str(SCHEMA_VERSION))
    return True
