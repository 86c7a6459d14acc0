"""Files of the store directory: atomic writes, the writer's lock, the manifest, sizes on disk.

  atomic_write(path, data)   temp file + fsync + rename + fsync of the folder: a crash leaves the old file
                             or the new one, never a torn one
  StoreLock                  flock() on <store>/lock, held by the one process that writes; holds its pid
  read_manifest / write_manifest   <store>/manifest.json: {"format": "optimem-store", "format_version": N}
  dir_bytes(root)            bytes of the files under root (files that vanish while we walk are skipped)
  confine(store, rel)        a path read from the store, resolved and refused unless it lies inside it
  storage_error(e, store)    an OSError / sqlite3.Error as the optimem error that says what to do
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from optimem.errors import (
    OptimemError,
    PageDamagedError,
    StoreError,
    StoreFormatError,
    StoreFullError,
    StoreLockedError,
)

__all__ = ["FORMAT_VERSION", "MANIFEST", "DB_FILE", "DB_FILES", "LOCK_FILE", "QUARANTINE", "TMP_NAME", "atomic_write", "fsync_dir", "dir_bytes",
           "StoreLock", "read_manifest", "write_manifest", "sha256", "confine", "storage_error"]

FORMAT_VERSION = 2  # of the store directory; 1: optimem 0.1 (no store id, no hashes), upgraded by a writer
MANIFEST, DB_FILE, LOCK_FILE, QUARANTINE = "manifest.json", "optimem.sqlite3", "lock", "quarantine"
DB_FILES = (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", DB_FILE + "-journal")
TMP_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")  # atomic_write's temp files
_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def confine(store: Path, rel: str, *, under: str = "pages") -> Path:
    """store/rel, resolved (symlinks followed), if it lies inside store/under; else PageDamagedError.
    Every path the store reads from its own database goes through here, so a hostile or damaged store
    cannot make optimem read or delete files elsewhere."""
    root = (store / under).resolve()
    path = (store / rel).resolve() if isinstance(rel, str) and rel and "\0" not in rel else None
    if path is None or not path.is_relative_to(root) or path == root:
        raise PageDamagedError(
            f"the store {store} records a page file {rel!r} outside its {under}/ folder; refused (optimem only "
            f"reads and deletes files inside the store). Run `optimem check {store}` to list the affected turns"
        )
    return path


def storage_error(e: BaseException, store: Path, doing: str) -> OptimemError:
    """The optimem error for an I/O or SQLite error hit while `doing` something with the store."""
    if isinstance(e, OptimemError):
        return e
    code = getattr(e, "errno", None)
    msg = str(e).lower()
    if code in _FULL or "disk is full" in msg or "database or disk is full" in msg:
        return StoreFullError(
            f"the disk holding {store} is full while {doing}: nothing of this call was committed. Free some "
            "space and retry; the store needs no repair"
        )
    if code in _READ_ONLY or "readonly database" in msg or "read-only file system" in msg:
        return StoreError(
            f"cannot write to {store} while {doing} ({e}): the media is read-only or you lack permission. "
            "Open it with read_only=True to read it, or copy it somewhere writable"
        )
    if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
        return StoreFormatError(
            f"the database {store / DB_FILE} is damaged ({e}) while {doing}. Restore it from a backup; "
            f"`optimem check {store}` reports what else is affected"
        )
    return StoreError(f"I/O error on the store {store} while {doing}: {e}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dir_bytes(root: Path) -> int:
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


def atomic_write(path: Path, data: bytes) -> None:
    """Write data to path so that a crash leaves either the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class StoreLock:
    """The writer's exclusive flock() on <store>/lock. The file holds the holder's pid for error messages."""

    def __init__(self, store: Path, timeout: float) -> None:
        fd = os.open(store / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
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
                        f"the store {store} is open for writing in {where}; waited {timeout:g} s. Close it "
                        "there, pass a larger lock_timeout, or open with read_only=True"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def write_manifest(store: Path, version: int, **extra: Any) -> None:
    info = {"format": "optimem-store", "format_version": version, "created": time.time(), **extra}
    atomic_write(store / MANIFEST, json.dumps(info, indent=2).encode())


def read_manifest(store: Path, newest: int) -> dict[str, Any]:
    """The manifest as a dict; StoreFormatError if it is unreadable, not ours, or newer than `newest`."""
    manifest = store / MANIFEST
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StoreFormatError(f"cannot read {manifest}: {e}; the store is damaged or not an optimem store") from e
    if not isinstance(info, dict) or info.get("format") != "optimem-store":
        raise StoreFormatError(f"{manifest} does not describe an optimem store")
    version = info.get("format_version")
    if not isinstance(version, int) or version > newest:
        raise StoreFormatError(
            f"{store} uses store format {version!r}, this optimem reads up to {newest}; upgrade optimem"
        )
    return info
