"""The vector index of one namespace: int64 ids -> L2-normalised float32 vectors, inner-product search.

Exact (FAISS IndexFlatIP inside an IndexIDMap2) up to `hnsw_threshold` live vectors, HNSW above. It is a
cache of the `vectors` table: the store can always rebuild it from SQLite (optimem.store.archive decides
when). faiss is imported on first use, so `import optimem` does not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from optimem.errors import StoreFormatError

__all__ = ["HNSW_THRESHOLD", "VectorIndex"]

# Past this many live vectors a namespace switches from exact search to HNSW (M=32, efConstruction=80).
# Measured on 2 busy cores, 384-d clustered vectors, k=32: exact 30 ms/query at 100k and 57 ms at 300k;
# HNSW 8 ms at 100k with the same top-32 as exact (recall 1.000), but building it took 34 s, paid once
# by the add() that crosses the threshold (and by a reopen after a crash). docs/api.md has the numbers.
HNSW_THRESHOLD = 100_000


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
