"""VectorIndex: exact and HNSW agree, deletes, the switch past the threshold, serialisation."""

from __future__ import annotations

import numpy as np

from optimem.store import VectorIndex


def _vecs(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_vector_index_flat_and_hnsw_agree_and_delete():
    ids, vecs = np.arange(100, 400, dtype=np.int64), _vecs(300)
    flat = VectorIndex.build(16, ids, vecs, hnsw_threshold=10_000)
    hnsw = VectorIndex.build(16, ids, vecs, hnsw_threshold=10)
    assert (flat.kind, hnsw.kind) == ("flat", "hnsw")
    for q in vecs[:20]:
        assert flat.search(q, 1)[0][0] == hnsw.search(q, 1)[0][0]
    for vi in (flat, hnsw):
        vi.remove([100, 101])
        assert vi.live == 298
        assert all(i not in (100, 101) for i, _ in vi.search(vecs[0], 50))
        assert vi.search(vecs[2], 1)[0][0] == 102
        clone = VectorIndex.from_bytes(vi.to_bytes(), 16, vi.dead, hnsw_threshold=vi.hnsw_threshold)
        assert clone.search(vecs[5], 3) == vi.search(vecs[5], 3)
    hnsw.remove(list(range(102, 140)))  # past 10% dead: rebuilt without them
    assert hnsw.dead == set() and hnsw.index.ntotal == 260


def test_flat_switches_to_hnsw_past_threshold():
    vi = VectorIndex(16, hnsw_threshold=50)
    vecs = _vecs(80)
    vi.add(np.arange(50, dtype=np.int64), vecs[:50])
    assert vi.kind == "flat"
    vi.add(np.arange(50, 80, dtype=np.int64), vecs[50:])
    assert vi.kind == "hnsw" and vi.live == 80
    assert vi.search(vecs[70], 1)[0][0] == 70
