"""Archive: namespaces, format checks, search through SQLite + FAISS, readers and writers, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from optimem.errors import (
    InvalidNamespaceError,
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
    StoreFormatError,
    StoreLockedError,
)
from optimem.store import FORMAT_VERSION, Archive, NewPage, NewTurn, validate_namespace
from optimem.store.archive import folder_of
from optimem.store.check import unreferenced_files

REPO = Path(__file__).resolve().parents[3]


def _vecs(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _open(path, ns="default", **kw) -> Archive:
    a = Archive.open(path, ns, **kw)
    if not kw.get("read_only"):
        a.ensure_namespace("test-embedder", 16)
    return a


def _add(a: Archive, texts, vecs) -> list[int]:
    return a.add_turns([NewTurn("user", t, 1.0, None, len(t) // 4) for t in texts], [v[None] for v in vecs], strength=10.0)


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


def test_turns_search_reopen_and_stale_index_rebuild(tmp_path):
    a = _open(tmp_path / "s")
    vecs = _vecs(30)
    ids = _add(a, [f"turn {i}" for i in range(30)], vecs)
    assert a.search(vecs[7], 1)[0].turn_id == ids[7]
    a.close()
    idx = tmp_path / "s" / "index" / f"{folder_of('default')}.faiss"
    assert idx.exists()
    b = _open(tmp_path / "s")
    assert b.search(vecs[7], 1)[0].turn_id == ids[7]
    more = _add(b, ["late"], _vecs(1, seed=9))
    # simulate a crash: the index on disk is now older than SQLite
    b._db.close()
    b._db = None
    b._release()
    c = _open(tmp_path / "s")
    assert c.search(_vecs(1, seed=9)[0], 1)[0].turn_id == more[0]
    c.close()
    idx.write_bytes(b"garbage")  # damaged index file: rebuilt, not trusted
    d = _open(tmp_path / "s")
    assert d.search(vecs[3], 1)[0].turn_id == ids[3]
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
        assert {h.turn_id for h in b.search(v, 10)} <= set(ids_b)
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
    assert r.search(vecs[1], 1)[0].turn_id == ids[1]
    later = _add(w, ["d"], _vecs(1, seed=5))  # the reader notices the writer's new vectors
    assert r.search(_vecs(1, seed=5)[0], 1)[0].turn_id == later[0]
    with pytest.raises(ReadOnlyError):
        _add(r, ["x"], _vecs(1))
    r.close()
    w.close()
    with pytest.raises(StoreClosedError):
        w.get_turn(ids[0])


def test_open_sweeps_only_files_the_database_proves_unreferenced(tmp_path):
    a = _open(tmp_path / "s")
    ids = _add(a, ["one"], _vecs(1))
    a.page_out([NewPage(b"png-bytes", "{}", tuple(ids))], tier="base")
    kept = a.pages()[0].file
    folder = tmp_path / "s" / Path(kept).parent
    crashed = f"{Path(kept).parent.as_posix()}/{'ab' * 16}.png"  # named in pending_files, never committed
    a._conn().execute("INSERT INTO pending_files VALUES (?)", (crashed,))
    (tmp_path / "s" / crashed).write_bytes(b"written just before a kill")
    a._db.close()
    a._db = None
    a._release()
    (folder / "deadbeef.png").write_bytes(b"no proof it is ours")
    (folder / f".x.png.{'cd' * 16}.tmp").write_bytes(b"half written")
    b = _open(tmp_path / "s")
    assert sorted(p.name for p in folder.iterdir()) == sorted([Path(kept).name, "deadbeef.png"])
    assert b.read_page(b.pages()[0]) == b"png-bytes"
    assert unreferenced_files(b) == [f"{Path(kept).parent.as_posix()}/deadbeef.png"]
    b.close()


def _child(store: Path, hold: float) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from optimem.store import Archive
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
