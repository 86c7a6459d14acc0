"""Opening a store directory: create it, prove the database is this store's, upgrade old formats, sweep.

  open_writer(a, ...)  mkdir, refuse a foreign directory, take the lock (before anything is written),
                       create the store if it has no manifest (database first, manifest last), check the
                       database's identity, prepare it for writing, upgrade format 1, checkpoint, sweep
  open_reader(a)       manifest and identity only; on read-only media reads the database immutably
  sweep(a)             deletes only the files pending_files / dead_files prove are garbage, temp files, and
                       kept token grids of pages that no longer exist

The functions fill in the Archive `a` that optimem.store.archive.Archive.open made (its connection, lock
and schema version); on error the caller releases what was taken.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimem.errors import PageDamagedError, StoreFormatError
from optimem.store.files import (
    DB_FILE,
    DB_FILES,
    FORMAT_VERSION,
    LOCK_FILE,
    MANIFEST,
    TMP_NAME,
    StoreLock,
    confine,
    read_manifest,
    sha256,
    write_manifest,
)
from optimem.store import tokens
from optimem.store.schema import (
    connect,
    get_meta,
    migrate,
    prepare_writer,
    schema_version,
    set_meta,
)

if TYPE_CHECKING:
    from optimem.store.archive import Archive

__all__ = ["open_reader", "open_writer", "sweep"]


def open_reader(a: Archive) -> None:
    if not (a.path / MANIFEST).exists():
        raise StoreFormatError(f"no optimem store at {a.path} (no {MANIFEST}); open it once for writing to create it")
    info = read_manifest(a.path, FORMAT_VERSION)
    db_path = db_path_or_error(a)
    try:
        a._db = connect(db_path, read_only=True)
        a._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        if os.access(a.path, os.W_OK):
            raise
        # read-only media: SQLite cannot create the -shm file WAL readers need; read the file as it is
        if a._db is not None:
            a._db.close()
        a._db = connect(db_path, read_only=True, immutable=True)
    a._schema = schema_version(a._db)
    check_identity(a, info)


def open_writer(a: Archive, lock_timeout: float, create: bool) -> None:
    if not a.path.exists():
        if not create:
            raise StoreFormatError(f"no optimem store at {a.path}; pass create=True to make one")
        a.path.mkdir(parents=True, exist_ok=True)  # another process may be creating it too
    refuse_foreign(a)  # before the lock file is written into someone else's directory
    a._lock = StoreLock(a.path, lock_timeout)
    if not (a.path / MANIFEST).exists():
        refuse_foreign(a)  # again, now that no other writer can be half way through creating it
        create_store(a)
    info = read_manifest(a.path, FORMAT_VERSION)
    a._db = connect(db_path_or_error(a), read_only=False)
    check_identity(a, info)  # before anything is written to it: it may be another store's, or not ours
    prepare_writer(a._db)
    if a._schema < 2 or info.get("format_version") != FORMAT_VERSION or "store_id" not in info:
        upgrade(a, info)
    a._checkpoint()  # a crash may have left turn text of paged-out turns in the WAL
    sweep(a)


def refuse_foreign(a: Archive) -> None:
    """A directory without a manifest may hold only what an interrupted creation leaves behind."""
    if (a.path / MANIFEST).exists():
        return
    ours = {LOCK_FILE, *DB_FILES}
    foreign = [p.name for p in a.path.iterdir() if p.name not in ours and not TMP_NAME.fullmatch(p.name)]
    if foreign:
        raise StoreFormatError(
            f"{a.path} is a non-empty directory without {MANIFEST} (it holds {sorted(foreign)[:3]}), so "
            "it is not an optimem store; pass an empty or new directory. If it is a store whose manifest was "
            f"lost, restore {MANIFEST} from a backup"
        )


def create_store(a: Archive) -> None:
    """Make a new store under the lock: database first, manifest last (its presence marks a finished
    store). A database with a store id (killed just before the manifest) is completed; other leftovers
    of an interrupted creation are replaced: that open never returned, so they hold nothing anyone was
    told is stored. A database that holds turns but no store id is not ours to guess: refused."""
    store_id, turns = leftover_database(a)
    if store_id is None and turns:
        raise StoreFormatError(
            f"{a.path} has no {MANIFEST}, but its {DB_FILE} holds {turns} turns; nothing was changed. Restore "
            f"{MANIFEST} from a backup"
        )
    for f in a.path.iterdir():
        if TMP_NAME.fullmatch(f.name):
            f.unlink()
    if store_id is None:
        for name in DB_FILES:
            (a.path / name).unlink(missing_ok=True)
        store_id = uuid.uuid4().hex
        db = connect(a.path / DB_FILE, read_only=False)
        try:
            prepare_writer(db)
            set_meta(db, "store_id", store_id)
        finally:
            db.close()
    write_manifest(a.path, FORMAT_VERSION, store_id=store_id)


def leftover_database(a: Archive) -> tuple[str | None, int]:
    """(store id, turns) of a database found without a manifest; (None, 0) if there is none or it is torn."""
    if not (a.path / DB_FILE).is_file():
        return None, 0
    try:
        db = connect(a.path / DB_FILE, read_only=True)
        try:
            store_id = get_meta(db, "store_id") if schema_version(db) else None
            turns = db.execute("SELECT COUNT(*) FROM turns").fetchone()[0] if store_id or schema_version(db) else 0
            return store_id, turns
        finally:
            db.close()
    except sqlite3.Error:
        return None, 0


def db_path_or_error(a: Archive) -> Path:
    db_path = a.path / DB_FILE
    if not db_path.is_file():
        raise StoreFormatError(
            f"{db_path} is missing, so {a.path} cannot be opened (nothing was changed or deleted). Restore "
            f"{DB_FILE} from the backup it was copied with; without it the page images cannot be mapped to turns"
        )
    return db_path


def check_identity(a: Archive, info: Mapping[str, Any]) -> None:
    """The database must be this store's: same store_id as the manifest, or (format 1) none at all."""
    db = a._conn()
    a._schema = schema_version(db)
    if a._schema == 0:
        raise StoreFormatError(f"{a.path / DB_FILE} is not an optimem database; restore the store's own")
    db_id, man_id = get_meta(db, "store_id"), info.get("store_id")
    if man_id is not None and db_id != man_id:
        raise StoreFormatError(
            f"{a.path / DB_FILE} belongs to another store (store id {db_id!r}, the manifest says {man_id!r}); "
            f"nothing was changed or deleted. Put this store's own {DB_FILE} back, or open the other store's "
            "directory instead"
        )


def upgrade(a: Archive, info: Mapping[str, Any]) -> None:
    """Format 1 -> 2 in place: new columns, hashes of the page files as they are now, a store id in the
    database and then in the manifest (both idempotent, so a crash half way just redoes it)."""
    db = a._conn()
    with a._tx():
        if migrate(db):
            for pid, f in db.execute("SELECT id, file FROM pages").fetchall():
                try:
                    digest = sha256(confine(a.path, f).read_bytes())
                except (PageDamagedError, FileNotFoundError):
                    digest = None  # reads of this page now say it is damaged
                db.execute("UPDATE pages SET sha256 = ? WHERE id = ?", (digest, pid))
        store_id = get_meta(db, "store_id") or info.get("store_id") or uuid.uuid4().hex
        set_meta(db, "store_id", store_id)
    a._schema = 2
    index_dir = a.path / "index"  # format 1's index/<ns>.faiss|json: caches, rebuilt when needed
    if index_dir.is_dir():
        for f in index_dir.iterdir():
            if f.suffix in (".json", ".faiss") and f.stem in a.namespaces():
                f.unlink()
    write_manifest(a.path, FORMAT_VERSION, store_id=store_id)


def sweep(a: Archive) -> None:
    """Delete the files a crash left behind, with proof: names in pending_files (written, never
    committed) or dead_files (dropped by a commit, not yet deleted) that no page references, and
    atomic_write's temp files. Anything else is left for `optimem check` to report."""
    db = a._conn()
    names = [r[0] for r in db.execute("SELECT name FROM pending_files UNION SELECT name FROM dead_files")]
    if names:
        live = {r[0] for r in db.execute("SELECT file FROM pages")}
        for name in names:
            if name not in live:
                with contextlib.suppress(PageDamagedError):
                    confine(a.path, name).unlink(missing_ok=True)
        with a._tx():
            db.execute("DELETE FROM pending_files")
            db.execute("DELETE FROM dead_files")
    tokens.sweep(a.path, [r[0] for r in db.execute("SELECT file FROM pages")])
    for d in (a.path, a.path / "index", *page_dirs(a)):
        if d.is_dir() and not d.is_symlink():
            for f in d.iterdir():
                if TMP_NAME.fullmatch(f.name) and f.is_file():
                    f.unlink()


def page_dirs(a: Archive) -> list[Path]:
    root = a.path / "pages"
    return [d for d in root.iterdir() if d.is_dir() and not d.is_symlink()] if root.is_dir() else []
