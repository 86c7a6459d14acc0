"""The errors optimem raises. Every message says what was wrong and what to do about it.

    OptimemError
     ├── InvalidInputError (ValueError)    a turn, query, option or name the caller passed is unusable
     │    └── InvalidNamespaceError        a namespace name that is empty, too long or could escape the store
     ├── NotFoundError (KeyError)          no turn with that id in this namespace (or it was forgotten)
     ├── StoreError (OSError)              the store directory cannot be used as asked
     │    ├── StoreLockedError             another process has the store open for writing
     │    ├── StoreFormatError             not an optimem store, damaged, from another store, or a newer format
 │    │    └── PageDamagedError         one page image is missing, truncated, altered or outside the store
 │    ├── StoreFullError               the disk is full: nothing of the call was committed
     │    ├── StoreClosedError             the Memory / Archive was closed
     │    └── ReadOnlyError                a write was attempted on a store opened with read_only=True
     ├── EmbedderError                     the embedder is missing, broken, or not the one the store was built with
     └── ModelError                        the OCR model cannot be found or loaded
          └── ModelNotFoundError           no model was passed and no shipped model exists

Catch `OptimemError` to handle everything optimem raises on purpose. The store's I/O errors are wrapped:
a full disk is StoreFullError, read-only media or missing permissions are StoreError, a damaged database
is StoreFormatError; each keeps the operating system's error as its __cause__.
"""

from __future__ import annotations

__all__ = [
    "OptimemError",
    "InvalidInputError",
    "InvalidNamespaceError",
    "NotFoundError",
    "StoreError",
    "StoreLockedError",
    "StoreFormatError",
    "StoreClosedError",
    "ReadOnlyError",
    "PageDamagedError",
    "StoreFullError",
    "EmbedderError",
    "ModelError",
    "ModelNotFoundError",
]


class OptimemError(Exception):
    """Base class of every error optimem raises on purpose."""


class InvalidInputError(OptimemError, ValueError):
    """An argument the caller passed cannot be used (wrong type, empty text, bad option)."""


class InvalidNamespaceError(InvalidInputError):
    """A namespace name is not allowed (it must be 1-64 chars of [A-Za-z0-9_-], starting with a letter or digit)."""


class NotFoundError(OptimemError, KeyError):
    """No turn with this id exists in the namespace (never added, forgotten, or another namespace's)."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class StoreError(OptimemError, OSError):
    """The store directory cannot be opened or used as asked."""


class StoreLockedError(StoreError):
    """Another process holds the store's write lock."""


class StoreFormatError(StoreError):
    """The directory is not an optimem store, is damaged, or uses an unknown format version."""


class PageDamagedError(StoreFormatError):
    """A page image is missing, truncated, altered (its SHA-256 differs from the one recorded when it was
    written) or stored at a path outside the store. Only the turns drawn on that page are affected."""

    def __init__(self, message: str, *, page_id: int | None = None, turn_ids: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.page_id, self.turn_ids = page_id, turn_ids

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreFullError(StoreError):
    """The disk holding the store is full. Nothing of the failed call was committed; free space and retry."""


class StoreClosedError(StoreError):
    """The object was used after close()."""


class ReadOnlyError(StoreError):
    """A write (add, forget, consolidate, ...) on a store opened with read_only=True."""


class EmbedderError(OptimemError):
    """The embedder cannot be loaded, returned bad vectors, or differs from the store's embedder."""


class ModelError(OptimemError):
    """The OCR model cannot be loaded or used."""


class ModelNotFoundError(ModelError):
    """Memory() was created without model= and no shipped model exists in ocr_model/weights/."""
