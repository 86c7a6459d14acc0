"""The store: a directory that holds everything a Memory knows, safe against crashes and other processes.

    <store>/
      manifest.json          {"format": "optimem-store", "format_version": 1, ...}, written once, atomically
      lock                   flock()ed by the one process that writes; holds its pid for error messages
      optimem.sqlite3        SQLite in WAL mode: namespaces, turns, working (text of verbatim turns only),
                             pages, turn_pages, vectors (float32 blobs), events (the audit log)
      index/<ns>.faiss       FAISS IndexIDMap2 (exact inner product, or HNSW above `hnsw_threshold`
      index/<ns>.json        vectors), written temp + rename; rebuilt from SQLite when missing or stale
      pages/<ns>/<uuid>.png  page images at their current tier, written temp + fsync + rename

Raw text lives only in the `working` table, for turns that are still verbatim. Paging a turn out deletes
its row with `PRAGMA secure_delete=ON` (SQLite zeroes the freed bytes) and then checkpoints the WAL with
TRUNCATE, so the text leaves every file of the store. The event log and the metadata never hold turn
text. Nothing is pickled: JSON, PNG, float32 blobs and FAISS's own format.

Every write is one SQLite transaction committed with synchronous=FULL before the call returns, so a
`kill -9` loses nothing that returned. Page files are written before the transaction that references
them and deleted after the one that drops them; orphans left by a crash are removed at the next open.

One Archive is bound to one namespace: every query filters on it, and each namespace has its own
FAISS index, so one namespace's recall cannot see another's turns. The archive knows nothing about
rendering or models: it stores bytes, vectors and records that `optimem.memory` computes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optimem.errors import (
    EmbedderError,
    InvalidNamespaceError,
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
    StoreFormatError,
    StoreLockedError,
)
from optimem.forgetting import TIER_TOKENS

__all__ = [
    "FORMAT_VERSION",
    "HNSW_THRESHOLD",
    "Archive",
    "TurnRecord",
    "PageRecord",
    "Event",
    "VectorIndex",
    "validate_namespace",
]

FORMAT_VERSION = 1
MANIFEST, DB_FILE, LOCK_FILE = "manifest.json", "optimem.sqlite3", "lock"
# Past this many live vectors a namespace switches from exact search to HNSW (M=32, efConstruction=80).
# Measured on 2 busy cores, 384-d clustered vectors, k=32: exact 30 ms/query at 100k and 57 ms at 300k;
# HNSW 8 ms at 100k with the same top-32 as exact (recall 1.000), but building it took 34 s, paid once
# by the add() that crosses the threshold (and by a reopen after a crash). docs/api.md has the numbers.
HNSW_THRESHOLD = 100_000
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def validate_namespace(name: object) -> str:
    """Return name if it is a valid namespace: 1-64 chars of [A-Za-z0-9_-], first a letter or digit."""
    if not isinstance(name, str) or not _NAMESPACE.fullmatch(name):
        raise InvalidNamespaceError(
            f"invalid namespace {name!r}: use 1-64 characters from A-Z a-z 0-9 _ -, starting with a letter "
            "or digit (names become file names, so no dots, slashes or spaces)"
        )
    return name


@dataclass(frozen=True)
class TurnRecord:
    """One turn as the store knows it. `text` is set only while the turn is verbatim (working memory)."""

    id: int
    namespace: str
    seq: int  # 1-based position in the namespace: the 'turns' clock when it was added
    role: str
    timestamp: float
    metadata: dict[str, Any] | None
    n_chars: int
    n_tokens: int
    state: str  # 'verbatim' | 'archived' | 'forgotten'
    strength: float
    last_seq: int  # clock of the last write or recall, in turns ...
    last_time: float  # ... and in seconds
    recalls: int
    pinned: bool
    text: str | None


@dataclass(frozen=True)
class PageRecord:
    """One page image in the archive."""

    id: int
    namespace: str
    tier: str
    file: str  # relative to the store directory
    layout: str  # the renderer's layout map as JSON; opaque to the archive
    created: float
    turn_ids: tuple[int, ...]  # turns drawn on the page (forgotten ones excluded), in drawing order


@dataclass(frozen=True)
class Event:
    """One line of the audit log: kind is add | page_out | recall | tier | forget | pin | unpin | redact."""

    id: int
    time: float
    seq: int
    kind: str
    turn_id: int | None
    page_id: int | None
    detail: dict[str, Any]


_SCHEMA = """
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dir_bytes(root: Path) -> int:
    """Bytes of the files under root. A writer in another process may rename or delete a temp file while we
    walk: such a file is skipped, not an error."""
    total = 0
    for f in root.rglob("*"):
        try:
            if f.is_file():
                total += f.stat().st_size
        except FileNotFoundError:
            continue
    return total


def _atomic_write(path: Path, data: bytes) -> None:
    """Write data to path so that a crash leaves either the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------------------
# FAISS


def _faiss() -> Any:
    """faiss, imported on first use, so that `import optimem` (and the renderer that training uses) does not load it."""
    import faiss

    return faiss


class VectorIndex:
    """int64 ids -> L2-normalised vectors; inner-product search. Exact below hnsw_threshold, HNSW above.

    IndexIDMap2 lets the exact index delete by id without a rebuild. HNSW cannot delete, so there a
    removed id goes to `dead` (filtered out of results) and the index is rebuilt without them once they
    pass 10% of its size.
    """

    def __init__(self, dim: int, *, hnsw_threshold: int = HNSW_THRESHOLD) -> None:
        self.dim, self.hnsw_threshold = dim, hnsw_threshold
        self.index = self._empty("flat")
        self.kind = "flat"
        self.dead: set[int] = set()

    def _empty(self, kind: str) -> Any:  # a faiss.IndexIDMap2
        if kind == "flat":
            return _faiss().IndexIDMap2(_faiss().IndexFlatIP(self.dim))
        hnsw = _faiss().IndexHNSWFlat(self.dim, 32, _faiss().METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        return _faiss().IndexIDMap2(hnsw)

    @property
    def live(self) -> int:
        return int(self.index.ntotal) - len(self.dead)

    def _contents(self) -> tuple[np.ndarray, np.ndarray]:
        ids = _faiss().vector_to_array(self.index.id_map).astype(np.int64)  # (N,)
        vecs = self.index.index.reconstruct_n(0, int(self.index.ntotal)) if len(ids) else np.zeros((0, self.dim))
        keep = np.array([i not in self.dead for i in ids], dtype=bool) if self.dead else slice(None)
        return ids[keep], np.asarray(vecs, dtype=np.float32)[keep]

    def _rebuild(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        kind = "hnsw" if len(ids) > self.hnsw_threshold else "flat"
        index = self._empty(kind)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
        self.index, self.kind, self.dead = index, kind, set()

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
        if self.kind == "flat" and self.live > self.hnsw_threshold:
            self._rebuild(*self._contents())

    def remove(self, ids: Sequence[int]) -> None:
        if not len(ids):
            return
        if self.kind == "flat":
            self.index.remove_ids(np.asarray(list(ids), dtype=np.int64))
            return
        self.dead.update(int(i) for i in ids)
        if len(self.dead) > 0.1 * self.index.ntotal:
            self._rebuild(*self._contents())

    def search(self, query: np.ndarray, n: int) -> list[tuple[int, float]]:
        """The n best (id, inner product) for one query vector (dim,), best first."""
        total = int(self.index.ntotal)
        if total == 0 or n <= 0:
            return []
        want = min(n + len(self.dead), total)
        if self.kind == "hnsw":
            _faiss().downcast_index(self.index.index).hnsw.efSearch = max(64, want)
        sims, ids = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), want)
        out = [(int(i), float(s)) for i, s in zip(ids[0], sims[0]) if i >= 0 and int(i) not in self.dead]
        return out[:n]

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vecs: np.ndarray, *, hnsw_threshold: int) -> VectorIndex:
        vi = cls(dim, hnsw_threshold=hnsw_threshold)
        vi._rebuild(ids, vecs)
        return vi

    def to_bytes(self) -> bytes:
        return _faiss().serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int, dead: Sequence[int], *, hnsw_threshold: int) -> VectorIndex:
        vi = cls(dim, hnsw_threshold=hnsw_threshold)
        index = _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if not isinstance(index, _faiss().IndexIDMap2) or index.d != dim:
            raise StoreFormatError("FAISS index file has the wrong type or dimension")
        vi.index = index
        vi.kind = "hnsw" if isinstance(_faiss().downcast_index(index.index), _faiss().IndexHNSWFlat) else "flat"
        vi.dead = {int(i) for i in dead}
        return vi


# ---------------------------------------------------------------------------------------------------
# The store


class Archive:
    """A store directory opened for one namespace. Use `Archive.open`; close() when done."""

    def __init__(self) -> None:  # use Archive.open
        self.path: Path
        self.namespace: str
        self.read_only: bool
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._mutex = threading.RLock()
        self._index: VectorIndex | None = None
        self._index_gen = -1  # vec_gen the in-RAM index reflects
        self._saved_gen = -1  # vec_gen of the index file on disk
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

        A writer takes the store's lock, waiting up to lock_timeout seconds for another writer to close,
        then raises StoreLockedError. read_only=True takes no lock and refuses writes; it sees what the
        writer has committed.
        """
        self = cls()
        self.namespace = validate_namespace(namespace)
        self.path, self.read_only, self.hnsw_threshold = Path(path), read_only, hnsw_threshold
        if self.path.exists() and not self.path.is_dir():
            raise StoreFormatError(f"{self.path} is a file; an optimem store is a directory. Pass a directory path.")
        manifest = self.path / MANIFEST
        if read_only:
            if not manifest.exists():
                raise StoreFormatError(
                    f"no optimem store at {self.path} (no {MANIFEST}); open it once for writing to create it"
                )
        else:
            if not self.path.exists():
                if not create:
                    raise StoreFormatError(f"no optimem store at {self.path}; pass create=True to make one")
                self.path.mkdir(parents=True)
            elif not manifest.exists() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
                raise StoreFormatError(
                    f"{self.path} is a non-empty directory without {MANIFEST}, so it is not an optimem store; "
                    "pass an empty or new directory"
                )
            self._acquire_lock(lock_timeout)
        try:
            if not read_only and not manifest.exists():
                _atomic_write(
                    manifest,
                    json.dumps(
                        {"format": "optimem-store", "format_version": FORMAT_VERSION, "created": time.time()},
                        indent=2,
                    ).encode(),
                )
            self._check_manifest(manifest)
            self._connect()
            if not read_only:
                self._checkpoint()  # a crash may have left turn text of paged-out turns in the WAL
                self._remove_orphans()
        except BaseException:
            self._release()
            raise
        return self

    def _acquire_lock(self, timeout: float) -> None:
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    try:
                        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    finally:
                        os.close(fd)
                    where = (
                        "this process (another Memory or Archive)"
                        if holder == str(os.getpid())
                        else (f"another process (pid {holder})")
                    )
                    raise StoreLockedError(
                        f"the store {self.path} is open for writing in {where}; waited {timeout:g} s. Close it "
                        "there, pass a larger lock_timeout, or open with read_only=True"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _check_manifest(self, manifest: Path) -> None:
        try:
            info = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StoreFormatError(f"cannot read {manifest}: {e}; the store is damaged or not an optimem store") from e
        if not isinstance(info, dict) or info.get("format") != "optimem-store":
            raise StoreFormatError(f"{manifest} does not describe an optimem store")
        version = info.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise StoreFormatError(
                f"{self.path} uses store format {version!r}, this optimem reads up to {FORMAT_VERSION}; upgrade optimem"
            )

    def _connect(self) -> None:
        db_path = self.path / DB_FILE
        if self.read_only:
            if not db_path.exists():
                raise StoreFormatError(f"{db_path} is missing; the store is damaged")
            uri = f"file:{db_path}?mode=ro"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
        else:
            db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA secure_delete=ON")  # freed bytes are zeroed: deleted turn text leaves no trace
            db.execute("PRAGMA synchronous=FULL")  # a returned add survives kill -9 and power loss
            db.execute("PRAGMA temp_store=MEMORY")  # no temp files on disk
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(FORMAT_VERSION),))
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        self._db = db

    def _checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it to 0 bytes (old versions of rows go with it).

        Returns False when a reader in another process holds an old snapshot; the next page-out, forget or
        close tries again.
        """
        busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def _remove_orphans(self) -> None:
        """Delete page files no record points at and temp files, both left by a crash mid-write."""
        pages_dir = self.path / "pages" / self.namespace
        if pages_dir.is_dir():
            known = {r[0] for r in self._db.execute("SELECT file FROM pages WHERE namespace = ?", (self.namespace,))}
            for f in pages_dir.iterdir():
                if f"pages/{self.namespace}/{f.name}" not in known:
                    f.unlink()
        for d in (self.path, self.path / "index"):
            if d.is_dir():
                for f in d.glob(".*.tmp"):
                    f.unlink()

    def _release(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Save the FAISS index, checkpoint the WAL, release the lock. Safe to call twice."""
        with self._mutex:
            if self._db is None:
                return
            try:
                if not self.read_only:
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
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _event(self, db: sqlite3.Connection, kind: str, seq: int, turn_id=None, page_id=None, **detail) -> None:
        db.execute(
            "INSERT INTO events (namespace, time, seq, kind, turn_id, page_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.namespace, time.time(), seq, kind, turn_id, page_id, json.dumps(detail, sort_keys=True)),
        )

    # ----- namespace and clock

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

    def namespace_info(self) -> tuple[str, int]:
        """(embedder name, dim) the namespace was built with; NotFoundError if it does not exist yet."""
        row = self._conn().execute("SELECT embedder, dim FROM namespaces WHERE name = ?", (self.namespace,)).fetchone()
        if row is None:
            raise NotFoundError(f"namespace {self.namespace!r} does not exist in {self.path}")
        return row[0], row[1]

    def clock(self) -> int:
        """The namespace's 'turns' clock: how many turns were ever added to it."""
        row = self._conn().execute("SELECT seq FROM namespaces WHERE name = ?", (self.namespace,)).fetchone()
        return row[0] if row else 0

    def namespaces(self) -> list[str]:
        """All namespaces in the store (names only: their contents stay with them)."""
        return [r[0] for r in self._conn().execute("SELECT name FROM namespaces ORDER BY name")]

    # ----- turns

    def add_turns(
        self,
        turns: Sequence[tuple[str, str, float, str | None, int]],
        vectors: Sequence[np.ndarray],
        *,
        strength: float,
        pinned: Sequence[bool] | None = None,
    ) -> list[int]:
        """Insert verbatim turns (role, text, timestamp, metadata JSON, n_tokens) with their chunk vectors
        (one (chunks, dim) array per turn), all in one transaction. Returns the new turn ids."""
        with self._mutex:
            ids: list[int] = []
            new_vecs: list[tuple[int, np.ndarray]] = []
            pinned = pinned or [False] * len(turns)
            index = self._vector_index()  # current before the write, so the new vectors are added exactly once
            with self._tx() as db:
                seq = self.clock()
                for (role, text, ts, meta, n_tokens), vecs, pin in zip(turns, vectors, pinned):
                    seq += 1
                    cur = db.execute(
                        "INSERT INTO turns (namespace, seq, role, timestamp, metadata, n_chars, n_tokens, state, "
                        "strength, last_seq, last_time, pinned) VALUES (?, ?, ?, ?, ?, ?, ?, 'verbatim', ?, ?, ?, ?)",
                        (self.namespace, seq, role, ts, meta, len(text), n_tokens, strength, seq, ts, int(pin)),
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

    def turns(self, ids: Sequence[int]) -> dict[int, TurnRecord]:
        """Records for these ids that exist in this namespace (other namespaces' ids are simply absent)."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        with self._mutex:
            q = ",".join("?" * len(ids))
            rows = self._conn().execute(
                f"SELECT {_TURN_COLS} FROM turns t LEFT JOIN working w ON w.turn_id = t.id "
                f"WHERE t.namespace = ? AND t.id IN ({q})",
                (self.namespace, *ids),
            )
            return {r[0]: _turn(r) for r in rows}

    def working_turns(self) -> list[TurnRecord]:
        """The verbatim turns (with text), oldest first."""
        with self._mutex:
            rows = self._conn().execute(
                f"SELECT {_TURN_COLS} FROM turns t JOIN working w ON w.turn_id = t.id "
                "WHERE t.namespace = ? AND t.state = 'verbatim' ORDER BY t.seq",
                (self.namespace,),
            )
            return [_turn(r) for r in rows]

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

    def record_recalls(
        self, updates: Sequence[tuple[int, float, float]], *, now: float, seq: int | None = None
    ) -> None:
        """After a recall: per (turn id, retention at recall, new strength), reset the clocks to (seq, now)
        (seq defaults to the namespace's clock) and log it."""
        if not updates:
            return
        with self._mutex, self._tx() as db:
            seq = self.clock() if seq is None else seq
            for tid, r, strength in updates:
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

    def _page_path(self, name: str) -> Path:
        return self.path / name

    def _write_page_file(self, png: bytes) -> str:
        d = self.path / "pages" / self.namespace
        d.mkdir(parents=True, exist_ok=True)
        name = f"pages/{self.namespace}/{uuid.uuid4().hex}.png"
        _atomic_write(self.path / name, png)
        return name

    def page_out(self, pages: Sequence[tuple[bytes, str, Sequence[int]]], *, tier: str) -> list[int]:
        """Archive verbatim turns as pages: per page (PNG bytes, layout JSON, ids of the turns drawn on it).

        In one transaction the pages are recorded, the turns become 'archived' and their text rows are
        deleted; then the WAL is truncated, so the text is gone from disk when this returns.
        """
        with self._mutex:
            self._writable()
            files = [self._write_page_file(png) for png, _, _ in pages]  # before the commit that points at them
            page_ids: list[int] = []
            try:
                with self._tx() as db:
                    seq, now = self.clock(), time.time()
                    moved: set[int] = set()
                    for (_, layout, tids), f in zip(pages, files):
                        pid = db.execute(
                            "INSERT INTO pages (namespace, tier, file, layout, created) VALUES (?, ?, ?, ?, ?)",
                            (self.namespace, tier, f, layout, now),
                        ).lastrowid
                        page_ids.append(pid)
                        for tid in tids:
                            part = db.execute("SELECT COUNT(*) FROM turn_pages WHERE turn_id = ?", (tid,)).fetchone()[0]
                            db.execute("INSERT INTO turn_pages VALUES (?, ?, ?, ?)", (tid, pid, self.namespace, part))
                            moved.add(tid)
                        self._event(db, "page_out", seq, page_id=pid, tier=tier, turns=list(tids))
                    for tid in moved:
                        n = db.execute(
                            "UPDATE turns SET state = 'archived' WHERE id = ? AND namespace = ? AND state = 'verbatim'",
                            (tid, self.namespace),
                        ).rowcount
                        if n != 1:
                            raise NotFoundError(f"turn {tid} is not a verbatim turn of namespace {self.namespace!r}")
                        db.execute("DELETE FROM working WHERE turn_id = ? AND namespace = ?", (tid, self.namespace))
            except BaseException:
                for f in files:
                    self._page_path(f).unlink(missing_ok=True)
                raise
            self._checkpoint()
            return page_ids

    def _page_rows(self, cond: str, args: tuple) -> list[PageRecord]:
        """Pages of the namespace matching `cond` (SQL on p), oldest first, with their live turns."""
        db = self._conn()
        rows = db.execute(
            f"SELECT p.id, p.namespace, p.tier, p.file, p.layout, p.created FROM pages p "
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
        return [PageRecord(*r, turn_ids=tuple(on_page.get(r[0], ()))) for r in rows]

    def pages_of(self, turn_id: int) -> list[PageRecord]:
        """The pages a turn is drawn on, in reading order (a long turn spans several)."""
        with self._mutex:
            return self._page_rows(
                "AND p.id IN (SELECT page_id FROM turn_pages WHERE turn_id = ? AND namespace = ?)",
                (turn_id, self.namespace),
            )

    def pages(self) -> list[PageRecord]:
        """All pages of the namespace, oldest first."""
        with self._mutex:
            return self._page_rows("", ())

    def read_page(self, page: PageRecord) -> bytes:
        """The PNG bytes of a page at its current tier."""
        with self._mutex:
            self._conn()
            return self._page_path(page.file).read_bytes()

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
            new = self._write_page_file(png)
            try:
                with self._tx() as db:
                    db.execute("UPDATE pages SET file = ?, tier = ? WHERE id = ?", (new, tier, page_id))
                    if layout is not None:
                        db.execute("UPDATE pages SET layout = ? WHERE id = ?", (layout, page_id))
                    self._event(db, kind, self.clock(), page_id=page_id, tier=[row[1], tier], **detail)
            except BaseException:
                self._page_path(new).unlink(missing_ok=True)
                raise
            self._page_path(row[0]).unlink(missing_ok=True)

    # ----- forgetting

    def forget_turns(self, turn_ids: Sequence[int], *, reason: str) -> list[int]:
        """Delete turns for good: text rows, vectors, and pages left with no live turn. Records stay as
        'forgotten' tombstones (no text) so the audit log still resolves. Returns the ids it forgot."""
        with self._mutex:
            recs = [r for r in self.turns(turn_ids).values() if r.state != "forgotten"]
            if not recs:
                return []
            ids = [r.id for r in recs]
            q = ",".join("?" * len(ids))
            dead_files: list[str] = []
            index = self._vector_index()
            with self._tx() as db:
                seq = self.clock()
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
                        self._event(db, "tier", seq, page_id=pid, tier=[tier, "forgotten"])
                        dead_files.append(f)
                db.execute("UPDATE namespaces SET vec_gen = vec_gen + 1 WHERE name = ?", (self.namespace,))
            index.remove(vec_ids)
            self._index_gen = self._vec_gen()
            for f in dead_files:
                self._page_path(f).unlink(missing_ok=True)
            self._checkpoint()
            return ids

    # ----- search

    def _index_paths(self) -> tuple[Path, Path]:
        d = self.path / "index"
        return d / f"{self.namespace}.faiss", d / f"{self.namespace}.json"

    def _vec_gen(self) -> int:
        row = self._conn().execute("SELECT vec_gen, dim FROM namespaces WHERE name = ?", (self.namespace,)).fetchone()
        return row[0] if row else 0

    def _vector_index(self) -> VectorIndex:
        """The namespace's FAISS index: loaded from disk if current, else rebuilt from SQLite.

        A writer keeps its index current as it writes; a reader rebuilds when the writer changed the
        vectors since it last looked.
        """
        _, dim = self.namespace_info()
        gen = self._vec_gen()
        if self._index is not None and self._index_gen == gen:
            return self._index
        fpath, jpath = self._index_paths()
        self._index = None
        if fpath.exists() and jpath.exists():
            try:
                info = json.loads(jpath.read_text())
                if info.get("generation") == gen:
                    self._index = VectorIndex.from_bytes(
                        fpath.read_bytes(), dim, info.get("dead", []), hnsw_threshold=self.hnsw_threshold
                    )
                    self._saved_gen = gen
            except (OSError, ValueError, RuntimeError, StoreFormatError):
                self._index = None  # stale or damaged: the rebuild below replaces it
        if self._index is None:
            rows = (
                self._conn()
                .execute("SELECT id, vec FROM vectors WHERE namespace = ? ORDER BY id", (self.namespace,))
                .fetchall()
            )
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            self._index = VectorIndex.build(dim, ids, vecs, hnsw_threshold=self.hnsw_threshold)
        self._index_gen = gen
        return self._index

    def sample_vectors(self, n: int) -> tuple[np.ndarray, int]:
        """Up to n of this namespace's vectors drawn at random, (m, dim) float32, and how many it holds."""
        with self._mutex:
            db = self._conn()
            total = db.execute("SELECT COUNT(*) FROM vectors WHERE namespace = ?", (self.namespace,)).fetchone()[0]
            rows = db.execute(
                "SELECT vec FROM vectors WHERE namespace = ? ORDER BY random() LIMIT ?", (self.namespace, int(n))
            ).fetchall()
            dim = self.namespace_info()[1]
            return np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(len(rows), dim), total

    def search(self, query: np.ndarray, n: int) -> list[tuple[int, float]]:
        """The best n turns of this namespace for a query vector: (turn id, best chunk similarity)."""
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
                        f"WHERE v.namespace = ? AND t.namespace = ? AND t.state != 'forgotten' AND v.id IN ({q})",
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
            return sorted(best.items(), key=lambda kv: -kv[1])[:n]

    @property
    def index_kind(self) -> str:
        """'flat' (exact) or 'hnsw'."""
        with self._mutex:
            return self._vector_index().kind

    def flush(self) -> None:
        """Write the FAISS index to disk (atomically) if it changed since the last write."""
        with self._mutex:
            self._writable()
            if self._index is None or self._saved_gen == self._vec_gen():
                return
            gen = self._vec_gen()
            fpath, jpath = self._index_paths()
            fpath.parent.mkdir(exist_ok=True)
            _atomic_write(fpath, self._index.to_bytes())
            _atomic_write(jpath, json.dumps({"generation": gen, "dead": sorted(self._index.dead)}).encode())
            self._saved_gen = gen

    # ----- log and stats

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

    def stats(self) -> dict[str, Any]:
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
            size = _dir_bytes(self.path)
            return {
                "turns": {s: turns.get(s, 0) for s in ("verbatim", "archived", "forgotten")},
                "pages": {t: pages.get(t, 0) for t in TIER_TOKENS if pages.get(t, 0) or t != "large"},
                "visual_tokens": sum(TIER_TOKENS[t] * n for t, n in pages.items()),
                "archived_text_tokens": tokens[0],
                "archived_chars": tokens[1],
                "working_tokens": working,
                "vectors": vectors,
                "bytes_on_disk": size,
            }
