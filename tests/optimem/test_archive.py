from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from optimem.archive import FORMAT_VERSION, Archive, VectorIndex, validate_namespace
from optimem.errors import (
    InvalidNamespaceError,
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
    StoreFormatError,
    StoreLockedError,
)

REPO = Path(__file__).resolve().parents[2]


def _vecs(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _open(path, ns="default", **kw) -> Archive:
    a = Archive.open(path, ns, **kw)
    if not kw.get("read_only"):
        a.ensure_namespace("test-embedder", 16)
    return a


def _add(a: Archive, texts, vecs) -> list[int]:
    return a.add_turns([("user", t, 1.0, None, len(t) // 4) for t in texts], [v[None] for v in vecs], strength=10.0)


@pytest.mark.parametrize("name", ["default", "a", "user-42", "A_b-C", "x" * 64])
def test_good_namespaces(name):
    assert validate_namespace(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".", "..", "x" * 65, "a b", "ü", "-lead", "a.b", None, 3])
def test_bad_namespaces(name, tmp_path):
    with pytest.raises(InvalidNamespaceError, match="invalid namespace"):
        validate_namespace(name)
    with pytest.raises(InvalidNamespaceError):
        Archive.open(tmp_path / "s", name)


def test_store_layout_manifest_and_format_checks(tmp_path):
    a = _open(tmp_path / "s")
    a.close()
    info = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert info["format"] == "optimem-store" and info["format_version"] == FORMAT_VERSION
    (tmp_path / "s" / "manifest.json").write_text(json.dumps({"format": "optimem-store", "format_version": 99}))
    with pytest.raises(StoreFormatError, match="upgrade optimem"):
        Archive.open(tmp_path / "s")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    with pytest.raises(StoreFormatError, match="not an optimem store"):
        Archive.open(tmp_path / "other")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreFormatError, match="directory"):
        Archive.open(tmp_path / "file")
    with pytest.raises(StoreFormatError):
        Archive.open(tmp_path / "missing", read_only=True)


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


def test_turns_search_reopen_and_stale_index_rebuild(tmp_path):
    a = _open(tmp_path / "s")
    vecs = _vecs(30)
    ids = _add(a, [f"turn {i}" for i in range(30)], vecs)
    assert a.search(vecs[7], 1)[0][0] == ids[7]
    a.close()
    idx = tmp_path / "s" / "index" / "default.faiss"
    assert idx.exists()
    b = _open(tmp_path / "s")
    assert b.search(vecs[7], 1)[0][0] == ids[7]
    more = _add(b, ["late"], _vecs(1, seed=9))
    # simulate a crash: the index on disk is now older than SQLite
    b._db.close()
    b._db = None
    b._release()
    c = _open(tmp_path / "s")
    assert c.search(_vecs(1, seed=9)[0], 1)[0][0] == more[0]
    c.close()
    idx.write_bytes(b"garbage")  # damaged index file: rebuilt, not trusted
    d = _open(tmp_path / "s")
    assert d.search(vecs[3], 1)[0][0] == ids[3]
    d.close()


def test_namespaces_are_separate(tmp_path):
    a = _open(tmp_path / "s", "alice")
    va = _vecs(5, seed=1)
    ida = _add(a, [f"alice {i}" for i in range(5)], va)
    a.close()
    b = _open(tmp_path / "s", "bob")
    ids_b = _add(b, [f"bob {i}" for i in range(5)], _vecs(5, seed=2))
    # bob searching with alice's exact vectors only ever sees bob's turns
    for v in va:
        assert {t for t, _ in b.search(v, 10)} <= set(ids_b)
    assert b.turns(ida) == {}
    with pytest.raises(NotFoundError):
        b.get_turn(ida[0])
    assert b.forget_turns(ida, reason="test") == []
    assert sorted(b.namespaces()) == ["alice", "bob"]
    b.close()


def test_read_only_sees_commits_and_refuses_writes(tmp_path):
    w = _open(tmp_path / "s")
    vecs = _vecs(3)
    ids = _add(w, ["a", "b", "c"], vecs)
    r = Archive.open(tmp_path / "s", read_only=True)
    assert r.search(vecs[1], 1)[0][0] == ids[1]
    later = _add(w, ["d"], _vecs(1, seed=5))  # the reader notices the writer's new vectors
    assert r.search(_vecs(1, seed=5)[0], 1)[0][0] == later[0]
    with pytest.raises(ReadOnlyError):
        _add(r, ["x"], _vecs(1))
    r.close()
    w.close()
    with pytest.raises(StoreClosedError):
        w.get_turn(ids[0])


def test_orphan_page_files_are_removed_on_open(tmp_path):
    a = _open(tmp_path / "s")
    ids = _add(a, ["one"], _vecs(1))
    a.page_out([(b"png-bytes", "{}", ids)], tier="base")
    a.close()
    pages = tmp_path / "s" / "pages" / "default"
    (pages / "deadbeef.png").write_bytes(b"left by a crash")
    (pages / ".x.png.123.tmp").write_bytes(b"half written")
    b = _open(tmp_path / "s")
    assert sorted(p.name for p in pages.iterdir()) == [Path(b.pages()[0].file).name]
    b.close()


def _child(store: Path, hold: float) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from optimem.archive import Archive
        a = Archive.open({str(store)!r})
        print("ready", flush=True)
        time.sleep({hold})
        a.close()
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def test_second_writer_gets_a_clear_error_then_waits(tmp_path):
    store = tmp_path / "s"
    p = _child(store, hold=60)
    try:
        with pytest.raises(StoreLockedError, match=f"pid {p.pid}"):
            Archive.open(store, lock_timeout=0.2)
        r = Archive.open(store, read_only=True)  # readers need no lock
        r.close()
    finally:
        p.kill()
        p.wait()
    q = _child(store, hold=0.5)  # releases soon: a writer with a long enough timeout waits for it
    a = Archive.open(store, lock_timeout=30)
    assert q.wait(timeout=30) == 0
    a.close()
    assert os.path.exists(store / "lock")


def test_second_writer_in_the_same_process_is_named(tmp_path):
    a = Archive.open(tmp_path / "s")
    with pytest.raises(StoreLockedError, match="this process"):
        Archive.open(tmp_path / "s", lock_timeout=0)
    a.close()
    Archive.open(tmp_path / "s", lock_timeout=0).close()


def test_store_size_skips_files_that_vanish_mid_walk(tmp_path, monkeypatch):
    """Another process's writer renames its temp file between our is_file() and stat(): skip it, don't fail."""
    from pathlib import Path

    from optimem import archive

    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / ".b.png.123.tmp").write_bytes(b"y" * 5)
    assert archive._dir_bytes(tmp_path) == 15
    real_stat, calls = Path.stat, {}

    def stat(self, *a, **k):  # the temp file exists for the first look, then it is gone
        if self.name.endswith(".tmp"):
            calls[self.name] = calls.get(self.name, 0) + 1
            if calls[self.name] > 1:
                raise FileNotFoundError(self)
        return real_stat(self, *a, **k)

    monkeypatch.setattr(Path, "stat", stat)
    assert archive._dir_bytes(tmp_path) == 10
