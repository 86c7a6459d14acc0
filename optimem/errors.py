"""The errors optimem raises. Every message says what was wrong and what to do about it.

    OptimemError
     ├── InvalidInputError (ValueError)    a turn, query, option or name the caller passed is unusable
     │    └── InvalidNamespaceError        a namespace name that is empty, too long or could escape the store
     ├── NotFoundError (KeyError)          no turn with that id in this namespace (or it was forgotten)
     ├── StoreError (OSError)              the store directory cannot be used as asked
     │    ├── StoreLockedError             another process has the store open for writing
     │    ├── StoreFormatError             not an optimem store, or one written by a newer format version
     │    ├── StoreClosedError             the Memory / Archive was closed
     │    └── ReadOnlyError                a write was attempted on a store opened with read_only=True
     ├── EmbedderError                     the embedder is missing, broken, or not the one the store was built with
     └── ModelError                        the OCR model cannot be found or loaded
          └── ModelNotFoundError           no model was passed and no shipped model exists

Catch `OptimemError` to handle everything optimem raises on purpose. I/O errors from the operating
system (disk full, permissions) are not wrapped: they propagate as the `OSError` they are.
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
