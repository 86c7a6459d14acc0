"""The token cache: visual-token grids a reader encoded from a page image, kept on disk beside the page.

    tokens/<ns>-<h>/<page uuid>.<fingerprint>.npz   one file per page and reader weights: the page's SHA-256
                             and one float16 (h, w, D) array per view tier the reader encoded

Reading a page from its kept grids runs only the glyph heads (no encoder), which is most of a CPU recall.
The grids are a cache, never the record: a page's image stays the truth, and a grid is used only when its
file names the page's current image (its SHA-256) and the reader's weights (the fingerprint). A missing,
unreadable or stale file is encoded again; the files of a page whose image is dropped go with it, and the
sweep at open deletes those no page references. Only page files named as the store names them
(pages/<folder>/<32 hex>.png) get grids: a path from a tampered database never steers a write or delete. They hold no text. Writes are atomic and best effort: a
full disk costs the next read its speed, never a turn.

    load(store, page_file, sha256, fingerprint)           {view: grid} ({} when there is nothing usable)
    save(store, page_file, sha256, fingerprint, grids)    write (replacing other weights' file of the page)
    drop(store, page_files)                               delete the files of these pages
    sweep(store, live_files)                              delete the files of pages not in live_files
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from optimem.store.files import atomic_write

__all__ = ["TOKENS", "drop", "load", "save", "sweep"]

TOKENS = "tokens"
_NAME = re.compile(r"([0-9a-f]{32})\.([0-9a-f]{16})\.npz")


_PAGE = re.compile(r"pages/([A-Za-z0-9_-]{1,80})/([0-9a-f]{32})\.png")  # what the store names page files


def _folder(store: Path, page_file: str) -> Path | None:
    """tokens/<ns>-<h>/ for a page file named as the store names them; None for any other name (a path
    read from a tampered database never steers a write or a delete)."""
    m = _PAGE.fullmatch(page_file)
    return store / TOKENS / m.group(1) if m else None


def _path(store: Path, page_file: str, fingerprint: str) -> Path | None:
    folder = _folder(store, page_file)
    if folder is None or not re.fullmatch(r"[0-9a-f]{16}", fingerprint):
        return None
    return folder / f"{Path(page_file).stem}.{fingerprint}.npz"


def load(store: Path, page_file: str, sha256: str | None, fingerprint: str | None) -> dict[str, np.ndarray]:
    """The kept grids of this page image under these weights, or {} (none kept, unreadable, or stale)."""
    path = _path(store, page_file, fingerprint) if fingerprint and sha256 else None
    if path is None:
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["sha256"]) != sha256:
                return {}
            return {k: z[k] for k in z.files if k != "sha256" and z[k].ndim == 3}
    except (OSError, ValueError, KeyError, EOFError):
        return {}


def save(store: Path, page_file: str, sha256: str | None, fingerprint: str | None,
         grids: Mapping[str, np.ndarray]) -> bool:
    """Keep `grids` for this page image; False (nothing written) without a fingerprint or on an I/O error."""
    path = _path(store, page_file, fingerprint) if fingerprint and sha256 and grids else None
    if path is None:
        return False
    buf = io.BytesIO()
    np.savez(buf, sha256=np.array(sha256), **{k: np.asarray(v, dtype=np.float16) for k, v in grids.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buf.getvalue())
    except OSError:
        return False
    stem = Path(page_file).stem
    for other in path.parent.glob(f"{stem}.*.npz"):  # grids of earlier weights for this page
        if other != path:
            with contextlib.suppress(OSError):
                other.unlink()
    return True


def drop(store: Path, page_files: Iterable[str]) -> None:
    """Delete the kept grids of these page files (any weights)."""
    for f in page_files:
        folder = _folder(store, f)
        if folder is not None and folder.is_dir():
            for p in folder.glob(f"{Path(f).stem}.*.npz"):
                with contextlib.suppress(OSError):
                    p.unlink()


def sweep(store: Path, live_files: Iterable[str]) -> int:
    """Delete kept grids whose page no longer exists (a crash between a page's drop and theirs), and
    atomic_write's leftovers in the cache; returns how many files went."""
    root = store / TOKENS
    if not root.is_dir():
        return 0
    live = {m.groups() for m in map(_PAGE.fullmatch, live_files) if m}
    n = 0
    for folder in root.iterdir():
        if not folder.is_dir() or folder.is_symlink():
            continue
        for p in folder.iterdir():
            m = _NAME.fullmatch(p.name)
            if (m is None or (folder.name, m.group(1)) not in live) and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
    return n
