"""The store against damaged files, hostile copies and crashes: identity, hashes, confinement, sweeps, creation."""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from optimem.errors import InvalidInputError, PageDamagedError, StoreFormatError
from optimem.store import FORMAT_VERSION, Archive, NewPage, NewTurn
from optimem.store.archive import folder_of
from optimem.store.check import check_store

REPO = Path(__file__).resolve().parents[3]
PNG = b"\x89PNG\r\n\x1a\n" + b"page %d" + b"IEND\xaeB`\x82"


def _vecs(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _store(path: Path, ns: str = "default", pages: int = 2) -> tuple[Archive, list[int]]:
    """A store with 2 turns per page, `pages` pages; returns the open archive and the turn ids."""
    a = Archive.open(path, ns)
    a.ensure_namespace("test-embedder", 16)
    ids = a.add_turns([NewTurn("user", f"turn {i}", 1.0, None, 2) for i in range(2 * pages)],
                      [v[None] for v in _vecs(2 * pages)], strength=10.0)
    a.page_out([NewPage(PNG.replace(b"%d", str(i).encode()), "{}", tuple(ids[2 * i:2 * i + 2]))
                for i in range(pages)], tier="base")
    return a, ids


def _files(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in (path / "pages").rglob("*") if p.is_file())


def _crash(a: Archive) -> None:
    """Drop the archive as a kill -9 would: no flush, no checkpoint."""
    a._db.close()
    a._db = None
    a._release()


def test_missing_database_is_refused_and_nothing_is_deleted(tmp_path):
    a, _ = _store(tmp_path / "s")
    a.close()
    before = _files(tmp_path / "s")
    (tmp_path / "s" / "optimem.sqlite3").rename(tmp_path / "backup.sqlite3")
    for read_only in (False, True):
        with pytest.raises(StoreFormatError, match="optimem.sqlite3 is missing.*Restore"):
            Archive.open(tmp_path / "s", read_only=read_only)
    assert _files(tmp_path / "s") == before and len(before) == 2
    assert not (tmp_path / "s" / "optimem.sqlite3").exists()  # no new empty database was made either


def test_database_of_another_store_is_refused_and_nothing_is_deleted(tmp_path):
    _store(tmp_path / "s")[0].close()
    _store(tmp_path / "t", pages=1)[0].close()
    before = _files(tmp_path / "s")
    shutil.copy(tmp_path / "t" / "optimem.sqlite3", tmp_path / "s" / "optimem.sqlite3")
    for read_only in (False, True):
        with pytest.raises(StoreFormatError, match="belongs to another store"):
            Archive.open(tmp_path / "s", read_only=read_only)
    assert _files(tmp_path / "s") == before


def test_namespaces_differing_in_case_never_share_or_sweep_each_others_pages(tmp_path):
    assert folder_of("alice").lower() != folder_of("Alice").lower()
    a, _ = _store(tmp_path / "s", "Alice")
    a.close()
    b, _ = _store(tmp_path / "s", "alice")
    b.close()
    # on a case-insensitive filesystem the format-1 folders pages/alice and pages/Alice were one folder:
    # put Alice's files where alice's sweep looks, and check that opening alice leaves them alone
    shared = tmp_path / "s" / "pages" / "alice"
    shared.mkdir()
    for f in (tmp_path / "s" / "pages" / folder_of("Alice")).iterdir():
        shutil.copy(f, shared / f.name)
    before = _files(tmp_path / "s")
    for ns in ("alice", "Alice", "alice"):
        Archive.open(tmp_path / "s", ns).close()
    assert _files(tmp_path / "s") == before


def test_pages_are_checked_against_their_hash(tmp_path):
    a, ids = _store(tmp_path / "s")
    p0, p1 = a.pages()
    f0, f1 = tmp_path / "s" / p0.file, tmp_path / "s" / p1.file
    assert a.read_page(p0).startswith(b"\x89PNG")
    b0, b1 = f0.read_bytes(), f1.read_bytes()
    f0.write_bytes(b1)
    f1.write_bytes(b0)  # swapped: each is a valid page, of the wrong turns
    for p in (p0, p1):
        with pytest.raises(PageDamagedError, match=r"does not match the SHA-256.*swapped") as e:
            a.read_page(p)
        assert e.value.turn_ids == p.turn_ids and e.value.page_id == p.id
    f0.write_bytes(b0[:5])  # truncated
    with pytest.raises(PageDamagedError, match="does not match"):
        a.read_page(p0)
    f1.unlink()
    with pytest.raises(PageDamagedError, match="missing"):
        a.read_page(p1)
    a.close()


def test_paths_read_from_the_store_are_confined_to_it(tmp_path):
    a, ids = _store(tmp_path / "s")
    outside = tmp_path / "precious.txt"
    outside.write_text("not yours")
    link = tmp_path / "s" / "pages" / folder_of("default") / ("ee" * 16 + ".png")
    link.symlink_to(outside)
    db = a._conn()
    p0, p1 = a.pages()
    db.execute("UPDATE pages SET file = ? WHERE id = ?", ("../precious.txt", p0.id))
    db.execute("UPDATE pages SET file = ? WHERE id = ?", (link.relative_to(tmp_path / "s").as_posix(), p1.id))
    for p in a.pages():
        with pytest.raises(PageDamagedError, match="outside its pages/ folder"):
            a.read_page(p)
    assert a.forget_turns(ids, reason="test") == ids  # the rows go; the files they named are not touched
    a.close()
    Archive.open(tmp_path / "s").close()  # the sweep of dead_files does not follow them either
    assert outside.read_text() == "not yours"


def test_sweep_removes_only_what_the_database_proves_is_garbage(tmp_path):
    a, ids = _store(tmp_path / "s", pages=3)
    page = a.pages()[0]
    # a crash after a committed replace, before the old file was deleted: dead_files names it
    a.replace_page(page.id, PNG.replace(b"%d", b"new"), tier="small")
    old = tmp_path / "s" / page.file
    old.write_bytes(b"old copy left by a crash")
    a._conn().execute("INSERT OR IGNORE INTO dead_files VALUES (?)", (page.file,))
    stranger = tmp_path / "s" / "pages" / folder_of("default") / ("12" * 16 + ".png")
    stranger.write_bytes(b"unknown: kept")
    _crash(a)
    b = Archive.open(tmp_path / "s")
    assert not old.exists() and stranger.exists()
    assert [b.read_page(p)[:4] for p in b.pages()] == [b"\x89PNG"] * 3
    assert b._conn().execute("SELECT COUNT(*) FROM dead_files").fetchone()[0] == 0
    b.close()


def test_index_is_checked_against_its_hash_and_rebuilt(tmp_path):
    a, ids = _store(tmp_path / "s", pages=4)
    a.close()
    idx = tmp_path / "s" / "index" / f"{folder_of('default')}.faiss"
    data = bytearray(idx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a bit flip in the vectors: still loads with FAISS, but wrong
    idx.write_bytes(bytes(data))
    (tmp_path / "s" / "index" / "default.json").write_text("{not json")  # format 1's sidecar: ignored
    r = Archive.open(tmp_path / "s", read_only=True)
    assert "does not match its recorded SHA-256" in r.index_problem()
    q = _vecs(8)
    assert [r.search(q[i], 1)[0].turn_id for i in range(8)] == ids  # served from the vectors, not the file
    r.close()
    w = Archive.open(tmp_path / "s")
    report = check_store(w, repair=True)
    assert report.index_rebuilt and not report.damaged_pages
    assert w.index_problem() is None and idx.read_bytes() != bytes(data)
    w.close()


def test_half_created_store_is_created_again(tmp_path):
    store = tmp_path / "s"
    store.mkdir()
    (store / "lock").write_text("123")
    (store / "optimem.sqlite3").write_bytes(b"torn")  # killed before the manifest: never acknowledged
    (store / f".manifest.json.{'ab' * 16}.tmp").write_bytes(b"{")
    a = Archive.open(store)
    a.ensure_namespace("e", 16)
    assert json.loads((store / "manifest.json").read_text())["format_version"] == FORMAT_VERSION
    a.close()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(StoreFormatError, match="not an optimem store"):
        Archive.open(tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]  # not even a lock file


CREATOR = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    from optimem.store import Archive, NewTurn
    print("go", flush=True)
    a = Archive.open(sys.argv[1], lock_timeout=60)
    a.ensure_namespace("e", 4)
    a.add_turns([NewTurn("user", "hello", 1.0, None, 1)], [np.ones((1, 4), np.float32) / 2], strength=1.0)
    a.close()
    print("done", flush=True)
    """
)


def test_kill_during_creation_leaves_a_store_that_opens(tmp_path):
    rng = random.Random(0)
    code = CREATOR.format(repo=str(REPO))
    for trial in range(12):
        store = tmp_path / f"s{trial}"
        p = subprocess.Popen([sys.executable, "-c", code, str(store)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "go"
        time.sleep(rng.random() * 0.03)
        p.send_signal(signal.SIGKILL)
        p.wait()
        a = Archive.open(store)  # whatever the kill left, the store opens (created again if unfinished)
        a.ensure_namespace("e", 4)
        assert len(a.live_turns()) in (0, 1)
        a.close()


def test_processes_creating_one_store_at_once_all_succeed(tmp_path):
    store = tmp_path / "s"
    code = CREATOR.format(repo=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [e for _, e in outs]
    a = Archive.open(store)
    assert len(a.live_turns()) == 6
    a.close()


def _downgrade_to_format_1(store: Path) -> None:
    """Rewrite a store as optimem 0.1 wrote it: schema 1 (no hashes, no file journal, no store id),
    manifest 1, index/<ns>.faiss|json, pages/<ns>/."""
    db = sqlite3.connect(store / "optimem.sqlite3")
    for ns, in db.execute("SELECT name FROM namespaces").fetchall():
        old = store / "pages" / ns
        (store / "pages" / folder_of(ns)).rename(old)
        db.execute("UPDATE pages SET file = 'pages/' || ? || '/' || substr(file, length(?) + 8) WHERE namespace = ?",
                   (ns, folder_of(ns), ns))
        (store / "index" / f"{folder_of(ns)}.faiss").rename(store / "index" / f"{ns}.faiss")
        (store / "index" / f"{ns}.json").write_text(json.dumps({"generation": 0, "dead": []}))
    for col in ("index_sha", "index_gen", "index_dead"):
        db.execute(f"ALTER TABLE namespaces DROP COLUMN {col}")
    db.execute("ALTER TABLE pages DROP COLUMN sha256")
    db.execute("DROP TABLE pending_files")
    db.execute("DROP TABLE dead_files")
    db.execute("DELETE FROM meta WHERE key = 'store_id'")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    (store / "manifest.json").write_text(json.dumps({"format": "optimem-store", "format_version": 1, "created": 1.0}))


def test_format_1_store_opens_read_only_and_is_upgraded_by_a_writer(tmp_path):
    a, ids = _store(tmp_path / "s", pages=2)
    q = _vecs(4)
    a.close()
    _downgrade_to_format_1(tmp_path / "s")
    r = Archive.open(tmp_path / "s", read_only=True)  # no writes: served as format 1
    assert [r.search(q[i], 1)[0].turn_id for i in range(4)] == ids
    assert [r.read_page(p)[:4] for p in r.pages()] == [b"\x89PNG"] * 2
    r.close()
    w = Archive.open(tmp_path / "s")
    info = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert info["format_version"] == 2 and info["store_id"] == w.store_id()
    assert all(p.sha256 for p in w.pages()) and all(p.file.startswith("pages/default/") for p in w.pages())
    assert [w.search(q[i], 1)[0].turn_id for i in range(4)] == ids
    w.replace_page(w.pages()[0].id, PNG.replace(b"%d", b"x"), tier="small")  # new files go to the new folder
    assert w.pages()[0].file.startswith(f"pages/{folder_of('default')}/")
    (tmp_path / "s" / w.pages()[1].file).write_bytes(b"damaged after the upgrade")
    with pytest.raises(PageDamagedError):
        w.read_page(w.pages()[1])
    w.close()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1, "10", None])
def test_bad_lock_timeout_is_refused_before_anything_is_written(tmp_path, bad):
    with pytest.raises(InvalidInputError, match="lock_timeout"):
        Archive.open(tmp_path / "s", lock_timeout=bad)
    assert not (tmp_path / "s").exists()


def test_a_damaged_index_is_replaced_by_the_next_writer(tmp_path):
    a, ids = _store(tmp_path / "s", pages=2)
    a.close()
    idx = tmp_path / "s" / "index" / f"{folder_of('default')}.faiss"
    idx.write_bytes(idx.read_bytes()[:-16])  # torn
    w = Archive.open(tmp_path / "s")
    assert w.search(_vecs(4)[2], 1)[0].turn_id == ids[2]
    w.close()  # writes the rebuilt index back, with its hash
    r = Archive.open(tmp_path / "s", read_only=True)
    assert r.index_problem() is None
    r.close()


def test_a_foreign_database_is_refused_and_left_byte_for_byte(tmp_path):
    _store(tmp_path / "s")[0].close()
    db = tmp_path / "s" / "optimem.sqlite3"
    db.unlink()
    other = sqlite3.connect(db)
    other.execute("CREATE TABLE notes (x TEXT)")
    other.commit()
    other.close()
    before = db.read_bytes()
    for read_only in (False, True):
        with pytest.raises(StoreFormatError, match="not an optimem database"):
            Archive.open(tmp_path / "s", read_only=read_only)
    assert db.read_bytes() == before


def test_store_killed_before_its_manifest_is_completed_not_wiped(tmp_path):
    a = Archive.open(tmp_path / "s")
    a.ensure_namespace("test-embedder", 16)
    ids = a.add_turns([NewTurn("user", f"t{i}", 1.0, None, 1) for i in range(4)], [v[None] for v in _vecs(4)],
                      strength=1.0)
    store_id = a.store_id()
    _crash(a)
    (tmp_path / "s" / "manifest.json").unlink()  # the state a kill between the database and the manifest leaves
    b = Archive.open(tmp_path / "s")
    assert b.store_id() == store_id and [t.id for t in b.live_turns()] == ids
    b.close()
    db = sqlite3.connect(tmp_path / "s" / "optimem.sqlite3")  # a database with turns but no store id
    db.execute("DELETE FROM meta WHERE key = 'store_id'")
    db.commit()
    db.close()
    (tmp_path / "s" / "manifest.json").unlink()
    with pytest.raises(StoreFormatError, match="holds 4 turns"):
        Archive.open(tmp_path / "s")
