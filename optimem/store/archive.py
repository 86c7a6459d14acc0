"""The store: a directory that holds everything a Memory knows, safe against crashes, damaged files and
hostile copies.

    <store>/
      manifest.json          {"format": "optimem-store", "format_version": 2, "store_id": ...}: written
                             last when a store is created, so a store without one was never finished
      lock                   flock()ed by the one process that writes; holds its pid for error messages
      optimem.sqlite3        SQLite in WAL mode (optimem.store.schema); its meta.store_id must equal the
                             manifest's, else the database belongs to another store and nothing is touched
      index/<ns>-<h>.faiss   the namespace's FAISS index (a cache: its SHA-256 and generation are in SQLite;
                             rebuilt from the vectors when missing, stale or not matching)
      pages/<ns>-<h>/<uuid>.png   page images at their current tier; <h> = 8 hex digits of SHA-256(ns), so
                             namespaces that differ only in case get different folders on any filesystem
      tokens/<ns>-<h>/<uuid>.<fp>.npz   visual-token grids a reader encoded from a page (a cache, keyed by
                             the page's SHA-256 and the reader's weights: optimem.store.tokens)
      quarantine/<time>/     files `optimem check --repair` moved out of the way (never deleted)

Raw text lives only in the `working` table, for turns that are still verbatim. Paging a turn out deletes
its row with `PRAGMA secure_delete=ON` (SQLite zeroes the freed bytes) and then checkpoints the WAL with
TRUNCATE, so the text leaves every file of the store. The event log and the metadata never hold turn
text. Nothing is pickled: JSON, PNG, float32 blobs and FAISS's own format.

Durability and integrity:
  - Every write is one SQLite transaction committed with synchronous=FULL before the call returns, so a
    `kill -9` loses nothing that returned, and a call that raises has committed nothing.
  - A page file's name is committed to `pending_files` before the file is written, and its SHA-256 with
    the transaction that points at it; a file a transaction drops goes to `dead_files` in that
    transaction and is deleted after it. The sweep at open deletes only files those two tables name and
    no page references, and kept token grids (tokens/, a cache) whose page is gone: nothing else is ever
    deleted (`optimem check --repair` quarantines the rest).
  - Every page read is checked against its SHA-256, and every path read from the database is resolved and
    refused unless it lies inside the store (optimem.store.files.confine): PageDamagedError, for that page.
  - The writer's lock is taken before anything is written; a store whose creation was interrupted (no
    manifest yet) is created again on the next open.
  - I/O and SQLite errors become optimem errors (StoreFullError, StoreError, StoreFormatError).

One Archive is bound to one namespace: every query filters on it, and each namespace has its own
FAISS index, so one namespace's recall cannot see another's turns. The archive knows nothing about
rendering or models: it stores bytes, vectors and the records of optimem.store.records that
`optimem.memory` computes. Its parts: opening.py (create, identify, upgrade, sweep), records.py (the typed
records), files.py (atomic writes, lock, manifest, confinement, error mapping), schema.py (SQLite and its
migrations), vectors.py (FAISS), check.py (`optimem check`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from optimem.errors import (
    EmbedderError,
    InvalidInputError,
    InvalidNamespaceError,
    NotFoundError,
    OptimemError,
    PageDamagedError,
    ReadOnlyError,
    StoreClosedError,
    StoreFormatError,
)
from optimem.forgetting import TIER_TOKENS
from optimem.store.files import (
    FORMAT_VERSION,
    StoreLock,
    atomic_write,
    confine,
    dir_bytes,
    sha256,
    storage_error,
)
from optimem.store.opening import open_reader, open_writer
from optimem.store.records import (
    ArchiveStats,
    Event,
    NamespaceInfo,
    NewPage,
    NewTurn,
    PageRecord,
    RecallUpdate,
    SearchHit,
    TurnRecord,
)
from optimem.store import tokens
from optimem.store.schema import get_meta
from optimem.store.vectors import HNSW_THRESHOLD, VectorIndex

__all__ = ["FORMAT_VERSION", "Archive", "validate_namespace", "folder_of"]

MAX_ID = 2**63 - 1
F = TypeVar("F", bound=Callable[..., Any])


def _guard(doing: str) -> Callable[[F], F]:
    """Turn the OSError / sqlite3.Error a store method hits into the optimem error that says what to do."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(self: Archive, *args: Any, **kw: Any) -> Any:
            try:
                return fn(self, *args, **kw)
            except OptimemError:
                raise
            except (OSError, sqlite3.Error) as e:
                raise storage_error(e, self.path, doing) from e

        return run  # type: ignore[return-value]

    return wrap


def folder_of(namespace: str) -> str:
    """The page / index folder name of a namespace: distinct for names that differ only in case."""
    return f"{namespace}-{sha256(namespace.encode())[:8]}"


_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def validate_namespace(name: object) -> str:
    """Return name if it is a valid namespace: 1-64 chars of [A-Za-z0-9_-], first a letter or digit."""
    if not isinstance(name, str) or not _NAMESPACE.fullmatch(name):
        raise InvalidNamespaceError(
            f"invalid namespace {name!r}: use 1-64 characters from A-Z a-z 0-9 _ -, starting with a letter "
            "or digit (names become file names, so no dots, slashes or spaces)"
        )
    return name


_TURN_COLS = (
    "t.id, t.namespace, t.seq, t.role, t.timestamp, t.metadata, t.n_chars, t.n_tokens, t.state, t.strength, "
    "t.last_seq, t.last_time, t.recalls, t.pinned, w.text"
)


def _turn(row: tuple) -> TurnRecord:
    return TurnRecord(
        id=row[0],
        namespace=row[1],
        seq=row[2],
        role=row[3],
        timestamp=row[4],
        metadata=json.loads(row[5]) if row[5] is not None else None,
        n_chars=row[6],
        n_tokens=row[7],
        state=row[8],
        strength=row[9],
        last_seq=row[10],
        last_time=row[11],
        recalls=row[12],
        pinned=bool(row[13]),
        text=row[14],
    )


class Archive:
    """A store directory opened for one namespace. Use `Archive.open`; close() when done."""

    def __init__(self) -> None:  # use Archive.open
        self.path: Path
        self.namespace: str
        self.read_only: bool = True
        self._db: sqlite3.Connection | None = None
        self._lock: StoreLock | None = None
        self._mutex = threading.RLock()
        self._index: VectorIndex | None = None
        self._index_gen = -1  # vec_gen the in-RAM index reflects
        self._index_dirty = False  # rebuilt from SQLite: the file on disk (if any) is not it
        self._schema = 2  # a read-only store of format 1 keeps 1: no hashes, no file journal
        self._unlinked: list[str] = []  # dead_files rows whose files are gone: dropped by the next transaction
        self.hnsw_threshold = HNSW_THRESHOLD

    # ----- opening, locking, closing

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        namespace: str = "default",
        *,
        read_only: bool = False,
        lock_timeout: float = 10.0,
        create: bool = True,
        hnsw_threshold: int = HNSW_THRESHOLD,
    ) -> Archive:
        """Open (or create) the store at path for namespace.

        A writer takes the store's lock before it writes anything, waiting up to lock_timeout seconds for
        another writer to close, then raises StoreLockedError. read_only=True takes no lock and refuses
        writes; it sees what the writer has committed (on read-only media: what was checkpointed).
        """
        self = cls()
        self.namespace = validate_namespace(namespace)
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or not (
            math.isfinite(lock_timeout) and 0 <= lock_timeout <= 86400
        ):
            raise InvalidInputError(f"lock_timeout must be seconds between 0 and 86400, got {lock_timeout!r}")
        if isinstance(hnsw_threshold, bool) or not isinstance(hnsw_threshold, int) or hnsw_threshold < 1:
            raise InvalidInputError(f"hnsw_threshold must be a positive int, got {hnsw_threshold!r}")
        self.path, self.read_only, self.hnsw_threshold = Path(path), read_only, hnsw_threshold
        if self.path.exists() and not self.path.is_dir():
            raise StoreFormatError(f"{self.path} is a file; an optimem store is a directory. Pass a directory path.")
        try:
            if read_only:
                open_reader(self)
            else:
                open_writer(self, float(lock_timeout), create)
        except BaseException as e:
            self._release()
            if isinstance(e, (OSError, sqlite3.Error)) and not isinstance(e, OptimemError):
                raise storage_error(e, self.path, "opening it") from e
            raise
        return self

    def _checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it to 0 bytes (old versions of rows go with it).

        Returns False when a reader in another process holds an old snapshot, or the disk is full; the next
        page-out, forget or close tries again.
        """
        try:
            busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:
            return False
        return not busy

    def _release(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        """Save the FAISS index, checkpoint the WAL, release the lock. Safe to call twice. The index is a
        cache: if it cannot be written (disk full), the next open rebuilds it."""
        with self._mutex:
            if self._db is None:
                return
            try:
                if not self.read_only:
                    with contextlib.suppress(OptimemError):
                        self.flush()
                    self._checkpoint()
            finally:
                self._release()

    @property
    def closed(self) -> bool:
        return self._db is None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreClosedError(f"the store {self.path} is closed; open it again to use it")
        return self._db

    def _writable(self) -> sqlite3.Connection:
        db = self._conn()
        if self.read_only:
            raise ReadOnlyError(f"the store {self.path} was opened with read_only=True; open it without to write")
        return db

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._writable()
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._unlinked:
                q = ",".join("?" * len(self._unlinked))
                db.execute(f"DELETE FROM dead_files WHERE name IN ({q})", self._unlinked)
            yield db
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self._unlinked = []

    def _event(self, db: sqlite3.Connection, kind: str, seq: int, turn_id=None, page_id=None, **detail) -> None:
        db.execute(
            "INSERT INTO events (namespace, time, seq, kind, turn_id, page_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.namespace, time.time(), seq, kind, turn_id, page_id, json.dumps(detail, sort_keys=True)),
        )


    # ----- namespace and clock

    @_guard("recording the namespace")
    def ensure_namespace(self, embedder: str, dim: int) -> None:
        """Record the namespace's embedder on first use; afterwards insist on the same one."""
        with self._mutex:
            row = (
                self._conn()
                .execute("SELECT embedder, dim FROM namespaces WHERE name = ?", (self.namespace,))
                .fetchone()
            )
            if row is None:
                if self.read_only:
                    raise NotFoundError(f"namespace {self.namespace!r} does not exist in {self.path}")
                with self._tx() as db:
                    db.execute(
                        "INSERT INTO namespaces (name, embedder, dim, created) VALUES (?, ?, ?, ?)",
                        (self.namespace, embedder, dim, time.time()),
                    )
                return
            if tuple(row) != (embedder, dim):
                raise EmbedderError(
                    f"namespace {self.namespace!r} of {self.path} was built with embedder {row[0]!r} ({row[1]}-d); "
                    f"you passed {embedder!r} ({dim}-d). Paged-out turns cannot be re-embedded (their text is "
                    f"gone): open it with embedder=embedder_by_name({row[0]!r}) or the same custom embedder"
                )

    @_guard("reading the namespace")
    def namespace_info(self) -> NamespaceInfo:
        """The embedder the namespace was built with; NotFoundError if it does not exist yet."""
        row = self._conn().execute("SELECT embedder, dim FROM namespaces WHERE name = ?", (self.namespace,)).fetchone()
        if row is None:
            raise NotFoundError(f"namespace {self.namespace!r} does not exist in {self.path}")
        return NamespaceInfo(embedder=row[0], dim=row[1])

    @_guard("reading the clock")
    def clock(self) -> int:
        """The namespace's 'turns' clock: how many turns were ever added to it."""
        row = self._conn().execute("SELECT seq FROM namespaces WHERE name = ?", (self.namespace,)).fetchone()
        return row[0] if row else 0

    @_guard("listing namespaces")
    def namespaces(self) -> list[str]:
        """All namespaces in the store (names only: their contents stay with them)."""
        return [r[0] for r in self._conn().execute("SELECT name FROM namespaces ORDER BY name")]

    # ----- turns

    @_guard("adding turns")
    def add_turns(
        self,
        turns: Sequence[NewTurn],
        vectors: Sequence[np.ndarray],
        *,
        strength: float,
        pinned: Sequence[bool] | None = None,
    ) -> list[int]:
        """Insert verbatim turns with their chunk vectors (one (chunks, dim) array per turn), all in one
        transaction. Returns the new turn ids."""
        with self._mutex:
            ids: list[int] = []
            new_vecs: list[tuple[int, np.ndarray]] = []
            pinned = pinned or [False] * len(turns)
            index = self._vector_index()  # current before the write, so the new vectors are added exactly once
            with self._tx() as db:
                seq = self.clock()
                for t, vecs, pin in zip(turns, vectors, pinned):
                    seq += 1
                    role, text, ts, n_tokens = t.role, t.text, t.timestamp, t.n_tokens
                    cur = db.execute(
                        "INSERT INTO turns (namespace, seq, role, timestamp, metadata, n_chars, n_tokens, state, "
                        "strength, last_seq, last_time, pinned) VALUES (?, ?, ?, ?, ?, ?, ?, 'verbatim', ?, ?, ?, ?)",
                        (self.namespace, seq, role, ts, t.metadata, len(text), n_tokens, strength, seq, ts, int(pin)),
                    )
                    tid = cur.lastrowid
                    ids.append(tid)
                    db.execute("INSERT INTO working VALUES (?, ?, ?)", (tid, self.namespace, text))
                    for c, v in enumerate(np.asarray(vecs, dtype=np.float32)):
                        vid = db.execute(
                            "INSERT INTO vectors (namespace, turn_id, chunk, vec) VALUES (?, ?, ?, ?)",
                            (self.namespace, tid, c, v.tobytes()),
                        ).lastrowid
                        new_vecs.append((vid, v))
                    self._event(db, "add", seq, turn_id=tid, role=role, n_chars=len(text), n_tokens=n_tokens)
                db.execute("UPDATE namespaces SET seq = ?, vec_gen = vec_gen + 1 WHERE name = ?", (seq, self.namespace))
            if new_vecs:
                index.add(np.array([v for v, _ in new_vecs], np.int64), np.stack([x for _, x in new_vecs]))
            self._index_gen = self._vec_gen()
            return ids

    def get_turn(self, turn_id: int) -> TurnRecord:
        """The turn with this id in this namespace, or NotFoundError (also for forgotten turns)."""
        rec = self.turns([turn_id]).get(turn_id)
        if rec is None or rec.state == "forgotten":
            raise NotFoundError(f"no turn {turn_id!r} in namespace {self.namespace!r} (never added, or forgotten)")
        return rec

    @_guard("reading turns")
    def turns(self, ids: Sequence[int]) -> dict[int, TurnRecord]:
        """Records for these ids that exist in this namespace (other namespaces' ids are simply absent)."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        with self._mutex:
            q = ",".join("?" * len(ids))
            rows = self._conn().execute(
                f"SELECT {_TURN_COLS} FROM turns t LEFT JOIN working w ON w.turn_id = t.id "
                f"WHERE +t.namespace = ? AND t.id IN ({q})",
                (self.namespace, *ids),
            )
            return {r[0]: _turn(r) for r in rows}

    @_guard("reading turns")
    def working_turns(self) -> list[TurnRecord]:
        """The verbatim turns (with text), oldest first."""
        with self._mutex:
            rows = self._conn().execute(
                f"SELECT {_TURN_COLS} FROM turns t JOIN working w ON w.turn_id = t.id "
                "WHERE t.namespace = ? AND t.state = 'verbatim' ORDER BY t.seq",
                (self.namespace,),
            )
            return [_turn(r) for r in rows]

    @_guard("reading turns")
    def live_turns(self, state: str | None = None) -> list[TurnRecord]:
        """Turns that are not forgotten (or only those in `state`), oldest first; no text."""
        with self._mutex:
            sql = f"SELECT {_TURN_COLS.replace('w.text', 'NULL')} FROM turns t WHERE t.namespace = ? "
            args: tuple = (self.namespace,)
            if state is None:
                sql += "AND t.state != 'forgotten' "
            else:
                sql, args = sql + "AND t.state = ? ", (self.namespace, state)
            return [_turn(r) for r in self._conn().execute(sql + "ORDER BY t.seq", args)]

    @_guard("recording a recall")
    def record_recalls(
        self, updates: Sequence[RecallUpdate], *, now: float, seq: int | None = None
    ) -> None:
        """After a recall: per turn (retention at recall, new strength), reset the clocks to (seq, now)
        (seq defaults to the namespace's clock) and log it."""
        if not updates:
            return
        with self._mutex, self._tx() as db:
            seq = self.clock() if seq is None else seq
            for u in updates:
                tid, r, strength = u.turn_id, u.retention, u.strength
                old = db.execute(
                    "SELECT strength FROM turns WHERE id = ? AND namespace = ?", (tid, self.namespace)
                ).fetchone()
                if old is None:
                    continue
                db.execute(
                    "UPDATE turns SET strength = ?, last_seq = ?, last_time = ?, recalls = recalls + 1 "
                    "WHERE id = ? AND namespace = ?",
                    (strength, seq, now, tid, self.namespace),
                )
                self._event(db, "recall", seq, turn_id=tid, retention=round(r, 6), strength=[old[0], strength])

    @_guard("pinning a turn")
    def set_pinned(self, turn_id: int, pinned: bool) -> None:
        """Pin (never decays) or unpin a turn; NotFoundError if it is not in this namespace."""
        with self._mutex:
            self.get_turn(turn_id)
            with self._tx() as db:
                db.execute(
                    "UPDATE turns SET pinned = ? WHERE id = ? AND namespace = ?", (int(pinned), turn_id, self.namespace)
                )
                self._event(db, "pin" if pinned else "unpin", self.clock(), turn_id=turn_id)

    # ----- pages

    def _page_file_name(self) -> str:
        return f"pages/{folder_of(self.namespace)}/{uuid.uuid4().hex}.png"

    def _write_page_files(self, pngs: Sequence[bytes]) -> list[tuple[str, str]]:
        """Write page files, their names committed to pending_files first (so a crash leaves proof that they
        may be swept). Returns (name, sha256) per file; on error removes what it wrote."""
        names = [self._page_file_name() for _ in pngs]
        with self._tx() as db:
            db.executemany("INSERT INTO pending_files VALUES (?)", [(n,) for n in names])
        try:
            for name, png in zip(names, pngs):
                (self.path / name).parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path / name, png)
        except BaseException:
            self._discard(names)
            raise
        return [(n, sha256(png)) for n, png in zip(names, pngs)]

    def _discard(self, names: Sequence[str]) -> None:
        """Remove files written for a transaction that did not commit (their pending_files rows stay: the
        next open's sweep clears them)."""
        for name in names:
            with contextlib.suppress(OSError):
                (self.path / name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _discarding(self, names: Sequence[str]) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._discard(names)
            raise

    def _drop_files(self, names: Sequence[str]) -> None:
        """After the commit that moved `names` to dead_files: delete them (only inside the store), and the
        token grids kept for them."""
        tokens.drop(self.path, names)
        for name in names:
            try:
                confine(self.path, name).unlink(missing_ok=True)
            except PageDamagedError:
                pass  # outside the store: never deleted, and nothing of ours to keep track of
            except OSError:
                continue  # still there: its dead_files row stays, so the next open's sweep retries
            self._unlinked.append(name)

    @_guard("paging turns out")
    def page_out(self, pages: Sequence[NewPage], *, tier: str) -> list[int]:
        """Archive verbatim turns as pages (PNG bytes, layout JSON, ids of the turns drawn on each).

        In one transaction the pages are recorded with their hashes, the turns become 'archived' and their
        text rows are deleted; then the WAL is truncated, so the text is gone from disk when this returns.
        """
        with self._mutex:
            self._writable()
            files = self._write_page_files([p.png for p in pages])  # before the commit that points at them
            page_ids: list[int] = []
            with self._discarding([f for f, _ in files]), self._tx() as db:
                seq, now = self.clock(), time.time()
                moved: set[int] = set()
                for page, (f, digest) in zip(pages, files):
                    pid = db.execute(
                        "INSERT INTO pages (namespace, tier, file, layout, created, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                        (self.namespace, tier, f, page.layout, now, digest),
                    ).lastrowid
                    db.execute("DELETE FROM pending_files WHERE name = ?", (f,))
                    page_ids.append(pid)
                    for tid in page.turn_ids:
                        part = db.execute("SELECT COUNT(*) FROM turn_pages WHERE turn_id = ?", (tid,)).fetchone()[0]
                        db.execute("INSERT INTO turn_pages VALUES (?, ?, ?, ?)", (tid, pid, self.namespace, part))
                        moved.add(tid)
                    self._event(db, "page_out", seq, page_id=pid, tier=tier, turns=list(page.turn_ids))
                for tid in moved:
                    n = db.execute(
                        "UPDATE turns SET state = 'archived' WHERE id = ? AND namespace = ? AND state = 'verbatim'",
                        (tid, self.namespace),
                    ).rowcount
                    if n != 1:
                        raise NotFoundError(f"turn {tid} is not a verbatim turn of namespace {self.namespace!r}")
                    db.execute("DELETE FROM working WHERE turn_id = ? AND namespace = ?", (tid, self.namespace))
            self._checkpoint()
            return page_ids

    def _page_rows(self, cond: str, args: tuple) -> list[PageRecord]:
        """Pages of the namespace matching `cond` (SQL on p), oldest first, with their live turns."""
        db = self._conn()
        sha = "p.sha256" if self._schema >= 2 else "NULL"
        rows = db.execute(
            f"SELECT p.id, p.namespace, p.tier, p.file, p.layout, p.created, {sha} FROM pages p "
            f"WHERE p.namespace = ? {cond} ORDER BY p.id",
            (self.namespace, *args),
        ).fetchall()
        on_page: dict[int, list[int]] = {}
        for pid, tid in db.execute(
            "SELECT tp.page_id, tp.turn_id FROM pages p JOIN turn_pages tp ON tp.page_id = p.id "
            f"JOIN turns t ON t.id = tp.turn_id WHERE p.namespace = ? {cond} AND t.state != 'forgotten' "
            "ORDER BY t.seq",
            (self.namespace, *args),
        ):
            on_page.setdefault(pid, []).append(tid)
        return [
            PageRecord(id=r[0], namespace=r[1], tier=r[2], file=r[3], layout=r[4], created=r[5],
                       turn_ids=tuple(on_page.get(r[0], ())), sha256=r[6])
            for r in rows
        ]

    @_guard("reading pages")
    def pages_of(self, turn_id: int) -> list[PageRecord]:
        """The pages a turn is drawn on, in reading order (a long turn spans several)."""
        with self._mutex:
            return self._page_rows(
                "AND p.id IN (SELECT page_id FROM turn_pages WHERE turn_id = ? AND namespace = ?)",
                (turn_id, self.namespace),
            )

    @_guard("reading pages")
    def pages_by_id(self, page_ids: Sequence[int]) -> list[PageRecord]:
        """These pages of the namespace (those that exist), oldest first."""
        ids = [int(i) for i in page_ids]
        if not ids:
            return []
        with self._mutex:
            return self._page_rows(f"AND p.id IN ({','.join('?' * len(ids))})", tuple(ids))

    @_guard("reading pages")
    def pages(self) -> list[PageRecord]:
        """All pages of the namespace, oldest first."""
        with self._mutex:
            return self._page_rows("", ())

    @_guard("reading a page")
    def read_page(self, page: PageRecord) -> bytes:
        """The PNG bytes of a page at its current tier, checked against the SHA-256 recorded when it was
        written. PageDamagedError (naming the page's turns) if the file is missing, altered or outside the
        store: the caller can carry on with the other pages."""
        with self._mutex:
            self._conn()
            path = confine(self.path, page.file)
            what = f"page {page.id} ({page.file}) of namespace {self.namespace!r}, showing turns {list(page.turn_ids)},"
            fix = (f"the store's other pages are unaffected. Restore the file from a backup, or forget those turns; "
                   f"`optimem check {self.path}` lists every damaged page")
            try:
                data = path.read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                raise PageDamagedError(f"{what} is missing: {fix}", page_id=page.id, turn_ids=page.turn_ids) from None
            if page.sha256 is None and self._schema >= 2:
                raise PageDamagedError(f"{what} was missing when the store was upgraded: {fix}",
                                       page_id=page.id, turn_ids=page.turn_ids)
            if page.sha256 is not None and sha256(data) != page.sha256:
                raise PageDamagedError(
                    f"{what} does not match the SHA-256 recorded when it was written (truncated, altered or swapped "
                    f"with another file): {fix}", page_id=page.id, turn_ids=page.turn_ids)
            return data

    def page_tokens(self, page: PageRecord, fingerprint: str | None) -> dict[str, np.ndarray]:
        """The token grids kept for this page's current image by a reader with these weights ({} if none)."""
        return tokens.load(self.path, page.file, page.sha256, fingerprint)

    def keep_tokens(self, page: PageRecord, fingerprint: str | None, grids: Mapping[str, np.ndarray]) -> bool:
        """Keep a reader's token grids of this page's current image (best effort; never in a read-only
        archive). True if written."""
        if self.read_only or self.closed:
            return False
        with self._mutex:
            return tokens.save(self.path, page.file, page.sha256, fingerprint, grids)

    @_guard("replacing a page")
    def replace_page(
        self, page_id: int, png: bytes, *, tier: str, kind: str = "tier", layout: str | None = None, **detail: Any
    ) -> None:
        """Swap a page's image (a lower tier, a redacted or a redrawn copy, then with its new layout) and log
        `kind` with the old and new tier."""
        with self._mutex:
            self._writable()
            row = (
                self._conn()
                .execute("SELECT file, tier FROM pages WHERE id = ? AND namespace = ?", (page_id, self.namespace))
                .fetchone()
            )
            if row is None:
                raise NotFoundError(f"no page {page_id} in namespace {self.namespace!r}")
            [(new, digest)] = self._write_page_files([png])
            with self._discarding([new]), self._tx() as db:
                self._swap_file(db, page_id, new, digest, row[0])
                db.execute("UPDATE pages SET tier = ? WHERE id = ?", (tier, page_id))
                if layout is not None:
                    db.execute("UPDATE pages SET layout = ? WHERE id = ?", (layout, page_id))
                self._event(db, kind, self.clock(), page_id=page_id, tier=[row[1], tier], **detail)
            self._drop_files([row[0]])

    def _swap_file(self, db: sqlite3.Connection, page_id: int, new: str, digest: str, old: str) -> None:
        db.execute("UPDATE pages SET file = ?, sha256 = ? WHERE id = ?", (new, digest, page_id))
        db.execute("DELETE FROM pending_files WHERE name = ?", (new,))
        db.execute("INSERT OR IGNORE INTO dead_files VALUES (?)", (old,))

    # ----- forgetting

    @_guard("forgetting turns")
    def forget_turns(
        self, turn_ids: Sequence[int], *, reason: str, redacted: Mapping[int, bytes] | None = None
    ) -> list[int]:
        """Delete turns for good, in one transaction: text rows, vectors, pages left with no live turn, and
        the images in `redacted` (page id -> the page with these turns' rows painted out) swapped in. Records
        stay as 'forgotten' tombstones (no text) so the audit log still resolves. Returns the ids it forgot."""
        with self._mutex:
            recs = [r for r in self.turns(turn_ids).values() if r.state != "forgotten"]
            if not recs:
                return []
            ids = [r.id for r in recs]
            q = ",".join("?" * len(ids))
            redacted = dict(redacted or {})
            olds = {
                pid: row
                for pid in redacted
                if (row := self._conn().execute(
                    "SELECT file, tier FROM pages WHERE id = ? AND namespace = ?", (pid, self.namespace)).fetchone())
            }
            if len(olds) != len(redacted):
                raise NotFoundError(f"pages {sorted(set(redacted) - set(olds))} are not in namespace {self.namespace!r}")
            index = self._vector_index()
            new_files = dict(zip(redacted, self._write_page_files(list(redacted.values())))) if redacted else {}
            dead_files: list[str] = []
            with self._discarding([f for f, _ in new_files.values()]), self._tx() as db:
                seq = self.clock()
                for pid, (new, digest) in new_files.items():
                    on_page = {r[0] for r in db.execute("SELECT turn_id FROM turn_pages WHERE page_id = ?", (pid,))}
                    self._swap_file(db, pid, new, digest, olds[pid][0])
                    self._event(db, "redact", seq, page_id=pid, tier=[olds[pid][1]] * 2, turns=sorted(on_page & set(ids)))
                    dead_files.append(olds[pid][0])
                vec_ids = [
                    r[0]
                    for r in db.execute(
                        f"SELECT id FROM vectors WHERE namespace = ? AND turn_id IN ({q})", (self.namespace, *ids)
                    )
                ]
                db.execute(f"DELETE FROM vectors WHERE namespace = ? AND turn_id IN ({q})", (self.namespace, *ids))
                db.execute(f"DELETE FROM working WHERE namespace = ? AND turn_id IN ({q})", (self.namespace, *ids))
                db.execute(
                    f"UPDATE turns SET state = 'forgotten', pinned = 0 WHERE namespace = ? AND id IN ({q})",
                    (self.namespace, *ids),
                )
                for r in recs:
                    self._event(db, "forget", seq, turn_id=r.id, reason=reason, was=r.state)
                # pages whose every turn is now forgotten go too
                for pid, f, tier in db.execute(
                    f"SELECT DISTINCT p.id, p.file, p.tier FROM pages p JOIN turn_pages tp ON tp.page_id = p.id "
                    f"WHERE p.namespace = ? AND tp.turn_id IN ({q})",
                    (self.namespace, *ids),
                ).fetchall():
                    alive = db.execute(
                        "SELECT COUNT(*) FROM turn_pages tp JOIN turns t ON t.id = tp.turn_id "
                        "WHERE tp.page_id = ? AND t.state != 'forgotten'",
                        (pid,),
                    ).fetchone()[0]
                    if alive == 0:
                        db.execute("DELETE FROM turn_pages WHERE page_id = ?", (pid,))
                        db.execute("DELETE FROM pages WHERE id = ?", (pid,))
                        db.execute("INSERT OR IGNORE INTO dead_files VALUES (?)", (f,))
                        self._event(db, "tier", seq, page_id=pid, tier=[tier, "forgotten"])
                        dead_files.append(f)
                db.execute("UPDATE namespaces SET vec_gen = vec_gen + 1 WHERE name = ?", (self.namespace,))
            index.remove(vec_ids)
            self._index_gen = self._vec_gen()
            self._drop_files(dead_files)
            self._checkpoint()
            return ids

    # ----- search

    def _index_path(self) -> Path:
        return self.path / "index" / f"{folder_of(self.namespace)}.faiss"

    def _vec_gen(self) -> int:
        row = self._conn().execute("SELECT vec_gen FROM namespaces WHERE name = ?", (self.namespace,)).fetchone()
        return row[0] if row else 0

    def _saved_index(self, dim: int, gen: int) -> VectorIndex | None:
        """The index file, if SQLite says it reflects generation `gen` and its SHA-256 matches; else None."""
        if self._schema < 2:
            return None
        row = self._conn().execute(
            "SELECT index_sha, index_gen, index_dead FROM namespaces WHERE name = ?", (self.namespace,)
        ).fetchone()
        if row is None or row[1] != gen or row[0] is None:
            return None
        try:
            data = self._index_path().read_bytes()
            if sha256(data) != row[0]:
                return None  # altered or torn: rebuilt from SQLite, and the writer's next flush replaces it
            return VectorIndex.from_bytes(data, dim, json.loads(row[2] or "[]"), hnsw_threshold=self.hnsw_threshold)
        except (OSError, ValueError, RuntimeError, StoreFormatError):
            return None

    def _rebuilt_index(self, dim: int) -> VectorIndex:
        rows = (
            self._conn()
            .execute("SELECT id, vec FROM vectors WHERE namespace = ? ORDER BY id", (self.namespace,))
            .fetchall()
        )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return VectorIndex.build(dim, ids, vecs, hnsw_threshold=self.hnsw_threshold)

    def _vector_index(self) -> VectorIndex:
        """The namespace's FAISS index: loaded from disk if current and intact, else rebuilt from SQLite.

        A writer keeps its index current as it writes; a reader rebuilds when the writer changed the
        vectors since it last looked.
        """
        dim = self.namespace_info().dim
        gen = self._vec_gen()
        if self._index is not None and self._index_gen == gen:
            return self._index
        saved = self._saved_index(dim, gen)
        self._index, self._index_dirty = (saved, False) if saved is not None else (self._rebuilt_index(dim), True)
        self._index_gen = gen
        return self._index

    @_guard("sampling vectors")
    def sample_vectors(self, n: int) -> tuple[np.ndarray, int]:
        """Up to n of this namespace's vectors drawn at random, (m, dim) float32, and how many it holds."""
        with self._mutex:
            db = self._conn()
            total = db.execute("SELECT COUNT(*) FROM vectors WHERE namespace = ?", (self.namespace,)).fetchone()[0]
            rows = db.execute(
                "SELECT vec FROM vectors WHERE namespace = ? ORDER BY random() LIMIT ?", (self.namespace, int(n))
            ).fetchall()
            dim = self.namespace_info().dim
            return np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(len(rows), dim), total

    @_guard("searching")
    def search(self, query: np.ndarray, n: int) -> list[SearchHit]:
        """The best n turns of this namespace for a query vector, with their best chunk's similarity."""
        with self._mutex:
            index = self._vector_index()
            best: dict[int, float] = {}
            want = n
            while True:  # long turns have several chunks: widen until n distinct turns or the index is exhausted
                hits = index.search(query, want)
                if not hits:
                    return []
                q = ",".join("?" * len(hits))
                owner = dict(
                    self._conn()
                    .execute(
                        f"SELECT v.id, v.turn_id FROM vectors v JOIN turns t ON t.id = v.turn_id "
                        f"WHERE +v.namespace = ? AND +t.namespace = ? AND t.state != 'forgotten' AND v.id IN ({q})",
                        (self.namespace, self.namespace, *[h[0] for h in hits]),
                    )
                    .fetchall()
                )
                best.clear()
                for vid, sim in hits:
                    tid = owner.get(vid)
                    if tid is not None and sim > best.get(tid, -np.inf):
                        best[tid] = sim
                if len(best) >= n or len(hits) < want:
                    break
                want *= 2
            return [SearchHit(tid, sim) for tid, sim in sorted(best.items(), key=lambda kv: -kv[1])[:n]]

    @property
    def index_kind(self) -> str:
        """'flat' (exact) or 'hnsw'."""
        with self._mutex:
            return self._vector_index().kind

    @_guard("writing the index")
    def flush(self, *, force: bool = False) -> None:
        """Write the FAISS index to disk (atomically) if it changed since the last write (or `force`), then
        record its SHA-256 and generation in SQLite."""
        with self._mutex:
            self._writable()
            if self._index is None and not force:
                return
            gen = self._vec_gen()
            row = self._conn().execute("SELECT index_gen FROM namespaces WHERE name = ?", (self.namespace,)).fetchone()
            if row is None or (row[0] == gen and not self._index_dirty and not force):
                return
            index = self._vector_index()
            data = index.to_bytes()
            self._index_path().parent.mkdir(exist_ok=True)
            atomic_write(self._index_path(), data)
            with self._tx() as db:
                db.execute(
                    "UPDATE namespaces SET index_sha = ?, index_gen = ?, index_dead = ? WHERE name = ?",
                    (sha256(data), gen, json.dumps(sorted(index.dead)), self.namespace),
                )
            self._index_dirty = False

    # ----- log and stats

    @_guard("reading the log")
    def events(
        self, *, turn_id: int | None = None, page_id: int | None = None, limit: int | None = None
    ) -> list[Event]:
        """The audit log of this namespace, oldest first (or the last `limit` events)."""
        with self._mutex:
            sql, args = (
                "SELECT id, time, seq, kind, turn_id, page_id, detail FROM events WHERE namespace = ?",
                [self.namespace],
            )
            if turn_id is not None:
                sql += " AND turn_id = ?"
                args.append(turn_id)
            if page_id is not None:
                sql += " AND page_id = ?"
                args.append(page_id)
            sql += " ORDER BY id DESC"
            if limit is not None:
                sql += " LIMIT ?"
                args.append(int(limit))
            rows = self._conn().execute(sql, args).fetchall()
            return [Event(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in reversed(rows)]

    @_guard("reading the store")
    def stats(self) -> ArchiveStats:
        """Counts for this namespace plus the store's size on disk."""
        with self._mutex:
            db = self._conn()
            turns = dict(
                db.execute("SELECT state, COUNT(*) FROM turns WHERE namespace = ? GROUP BY state", (self.namespace,))
            )
            pages = dict(
                db.execute("SELECT tier, COUNT(*) FROM pages WHERE namespace = ? GROUP BY tier", (self.namespace,))
            )
            tokens = db.execute(
                "SELECT COALESCE(SUM(n_tokens), 0), COALESCE(SUM(n_chars), 0) FROM turns "
                "WHERE namespace = ? AND state = 'archived'",
                (self.namespace,),
            ).fetchone()
            working = db.execute(
                "SELECT COALESCE(SUM(n_tokens), 0) FROM turns WHERE namespace = ? AND state = 'verbatim'",
                (self.namespace,),
            ).fetchone()[0]
            vectors = db.execute("SELECT COUNT(*) FROM vectors WHERE namespace = ?", (self.namespace,)).fetchone()[0]
            return ArchiveStats(
                turns={s: turns.get(s, 0) for s in ("verbatim", "archived", "forgotten")},
                pages={t: pages.get(t, 0) for t in TIER_TOKENS if pages.get(t, 0) or t != "large"},
                visual_tokens=sum(TIER_TOKENS[t] * n for t, n in pages.items()),
                archived_text_tokens=tokens[0],
                archived_chars=tokens[1],
                working_tokens=working,
                vectors=vectors,
                index_kind=self._vector_index().kind,
                bytes_on_disk=dir_bytes(self.path),
            )

    # ----- what `optimem check` needs (optimem.store.check puts it together)

    def store_id(self) -> str | None:
        return get_meta(self._conn(), "store_id")

    def index_problem(self) -> str | None:
        """Why the saved index file cannot serve this namespace, or None. A file older than the database is
        no problem (a cache: the writer rewrites it at close and consolidate, an open rebuilds it); a file
        whose bytes differ from its recorded SHA-256, or whose vectors differ from SQLite's, is."""
        with self._mutex:
            if self._schema < 2 or self.namespace not in self.namespaces():
                return None
            db = self._conn()
            sha, gen = db.execute(
                "SELECT index_sha, index_gen FROM namespaces WHERE name = ?", (self.namespace,)
            ).fetchone()
            path = self._index_path()
            if not path.exists():
                return None if sha is None else f"{path.name} is missing (a cache: rebuilt from the vectors)"
            if sha is None:
                return f"{path.name} was never recorded in the database"
            if sha256(path.read_bytes()) != sha:
                return f"{path.name} does not match its recorded SHA-256 (damaged)"
            want = {r[0] for r in db.execute("SELECT id FROM vectors WHERE namespace = ?", (self.namespace,))}
            live = set(self._vector_index()._contents()[0].tolist())
            if live != want:
                return f"the index in use holds {len(live)} vectors, the database {len(want)}"
            if gen != self._vec_gen():
                return None
            saved = self._saved_index(self.namespace_info().dim, gen)
            if saved is None:
                return f"{path.name} cannot be loaded"
            have = set(saved._contents()[0].tolist())
            if have != want:
                return f"{path.name} holds {len(have)} vectors, the database {len(want)}"
            return None

    @_guard("rebuilding the index")
    def rebuild_index(self) -> None:
        """Rebuild the namespace's index from the vectors in SQLite and write it."""
        with self._mutex:
            self._writable()
            self._index = self._rebuilt_index(self.namespace_info().dim)
            self._index_gen = self._vec_gen()
            self.flush(force=True)
