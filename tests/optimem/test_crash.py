"""kill -9 in the middle of add_many loses no add that returned and leaves no half-written batch."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from optimem import Memory, Reading
from optimem.embed import HashingEmbedder

REPO = Path(__file__).resolve().parents[2]
BATCH = 5


class CountingReader:
    """Counts tokens as chars / 4 and reads nothing: enough for adding, paging out (verify=False: a reader that
    reads nothing would keep every turn verbatim) and reopening."""

    name = "counting"

    def read(self, images, tier):
        return [Reading("", 0.0, True, 0) for _ in images]

    def count_tokens(self, text):
        return len(text) // 4 + 1


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {here!r})
    from optimem import Memory
    from optimem.embed import HashingEmbedder
    from test_crash import CountingReader, BATCH
    m = Memory({store!r}, model=CountingReader(), embedder=HashingEmbedder(64), working_tokens=150, verify=False)
    b = int(sys.argv[1])
    while True:
        texts = [f"crashtest batch {{b}} turn {{i}} " + "filler words " * 8 for i in range(BATCH)]
        ids = m.add_many(texts)
        print(b, *ids, flush=True)  # printed only once add_many has returned
        b += 1
    """
)


def _run_and_kill(store: Path, first_batch: int, n_batches: int, rng: random.Random) -> dict[int, list[int]]:
    code = CHILD.format(repo=str(REPO), here=str(Path(__file__).parent), store=str(store))
    p = subprocess.Popen([sys.executable, "-c", code, str(first_batch)], stdout=subprocess.PIPE, text=True)
    done: dict[int, list[int]] = {}
    try:
        while len(done) < n_batches:
            line = p.stdout.readline()
            assert line, "the child died before it was killed"
            b, *ids = map(int, line.split())
            done[b] = ids
        time.sleep(rng.random() * 0.05)  # land somewhere inside a later add_many (or its page-out)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    for line in p.stdout:  # lines the child managed to print before it died also count as returned
        b, *ids = map(int, line.split())
        done[b] = ids
    return done


def test_sigkill_mid_add_many_loses_nothing_that_returned(tmp_path):
    store = tmp_path / "store"
    rng = random.Random(0)
    returned: dict[int, list[int]] = {}
    next_batch = 0
    for _ in range(3):
        returned.update(_run_and_kill(store, next_batch, 8, rng))
        next_batch = max(returned) + 1000  # later rounds use fresh batch numbers
        with Memory(store, model=CountingReader(), embedder=HashingEmbedder(64), working_tokens=150, verify=False) as m:
            for ids in returned.values():
                for tid in ids:
                    rec = m.get(tid, decode=False)  # raises NotFoundError if it was lost
                    assert rec.tier in ("verbatim", "base")
            s = m.stats()
            total = s.turns_verbatim + s.turns_archived
            assert total % BATCH == 0, "a batch was half written"
            assert total >= sum(len(v) for v in returned.values())
            assert s.turns_archived > 0  # page-outs happened, so kills could land inside them
            events = m.events()
            assert sum(e.kind == "add" for e in events) == total
            # every archived turn's page file exists
            for page in m._archive.pages():
                assert (store / page.file).is_file()
    # after the final reopen the paged-out text is gone from disk, WAL included
    with Memory(store, model=CountingReader(), embedder=HashingEmbedder(64), working_tokens=150, verify=False) as m:
        archived = [t.id for t in m._archive.live_turns("archived")]
        seq_of = {t.id: t.seq for t in m._archive.live_turns()}
    blobs = [f.read_bytes() for f in store.rglob("*") if f.is_file()]
    batch_of = {tid: b for b, ids in returned.items() for tid in ids}
    for tid in archived:
        if tid in batch_of:
            needle = f"crashtest batch {batch_of[tid]} turn {returned[batch_of[tid]].index(tid)} ".encode()
            assert not any(needle in blob for blob in blobs), (tid, seq_of[tid])


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {here!r})
    from optimem import Memory
    from optimem.embed import HashingEmbedder
    from test_crash import CountingReader
    with Memory({store!r}, model=CountingReader(), embedder=HashingEmbedder(64), working_tokens=150, verify=False) as m:
        print("open", flush=True)
        for b in range(40):
            m.add_many([f"concurrent batch {{b}} turn {{i}} " + "words " * 10 for i in range(3)])
    print("done", flush=True)
    """
)


def test_a_reader_process_works_while_a_writer_pages_out(tmp_path):
    store = tmp_path / "store"
    code = WRITER.format(repo=str(REPO), here=str(Path(__file__).parent), store=str(store))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "open"
        while True:  # the namespace exists once the writer has added something
            try:
                r = Memory(store, model=CountingReader(), read_only=True)
                break
            except Exception:  # noqa: BLE001 - NotFoundError until the first add lands
                time.sleep(0.05)
        seen = 0
        while p.poll() is None or seen == 0:
            hits = r.recall("concurrent batch turn words", k=5, decode=False)
            ids = [h.turn_id for h in hits]
            assert len(ids) == len(set(ids))
            for tid in ids:  # every hit resolves to a real turn of this namespace
                assert r.get(tid, decode=False).turn_id == tid
            seen = max(seen, r.stats().turns_archived)
        r.close()
    finally:
        p.wait(timeout=60)
    assert p.returncode == 0 and seen > 0
    with Memory(store, model=CountingReader(), embedder=HashingEmbedder(64), verify=False) as m:
        s = m.stats()
        assert s.turns_verbatim + s.turns_archived == 120


FORGETTER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {here!r})
    from optimem import Memory
    from optimem.embed import HashingEmbedder
    from test_crash import CountingReader
    m = Memory({store!r}, model=CountingReader(), embedder=HashingEmbedder(64), working_tokens=150, verify=False)
    b = int(sys.argv[1])
    while True:
        ids = m.add_many([f"forget batch {{b}} turn {{i}} " + "filler words " * 4 for i in range(6)])
        archived = [r.id for r in m._archive.live_turns("archived")]
        victim = archived[len(archived) // 2] if archived else ids[0]
        m.forget(victim)  # a turn on a shared page: its rows are painted out in the same transaction
        print(victim, flush=True)
        b += 1
    """
)


def test_sigkill_mid_forget_leaves_no_turn_painted_out_but_live(tmp_path):
    """A redact event and the forget of its turns commit together, so after any kill every turn a page
    was painted for is forgotten, every forget that returned holds, and every page matches its hash."""
    store = tmp_path / "store"
    rng = random.Random(1)
    returned: list[int] = []
    for round_ in range(4):
        code = FORGETTER.format(repo=str(REPO), here=str(Path(__file__).parent), store=str(store))
        p = subprocess.Popen([sys.executable, "-c", code, str(round_ * 1000)], stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(3):
                line = p.stdout.readline()
                assert line, "the child died before it was killed"
                returned.append(int(line))
            time.sleep(rng.random() * 0.05)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        returned += [int(line) for line in p.stdout]
        with Memory(store, model=CountingReader(), embedder=HashingEmbedder(64), working_tokens=150, verify=False) as m:
            states = {r.id: r.state for r in m._archive.turns(list(range(1, 10_000))).values()}
            assert all(states[t] == "forgotten" for t in returned)
            painted = {t for e in m.events() if e.kind == "redact" for t in e.detail["turns"]}
            assert painted and all(states[t] == "forgotten" for t in painted)
            assert m.check().damaged_pages == ()
