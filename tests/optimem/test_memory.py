"""Memory end to end with the oracle reader (exact page text) and the hashing embedder (fast)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optimem import ForgettingPolicy, Memory, Turn
from optimem.embed import HashingEmbedder
from optimem.errors import (
    EmbedderError,
    InvalidInputError,
    ModelNotFoundError,
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
)
from ocr_model.page import CELL_H, CELL_W, MARGIN_X, MARGIN_Y, TIERS


def _page_image(m: Memory, turn_id: int) -> Image.Image:
    page = m._archive.pages_of(turn_id)[0]
    return Image.open(io.BytesIO(m._archive.read_page(page))).convert("L")  # stored as a 16-grey palette PNG


def test_add_accepts_str_message_and_turn(make_memory):
    m = make_memory()
    a = m.add("plain text is a user turn")
    b = m.add({"role": "assistant", "content": [{"type": "text", "text": "part one"}, {"type": "image_url"}]})
    c = m.add(Turn(role="tool", text="42", timestamp=1_700_000_000.0, metadata={"tool": "calc"}))
    d = m.add({"role": "user", "content": "hi", "name": "ann", "metadata": {"mood": "ok"}})
    assert [a, b, c, d] == sorted({a, b, c, d})
    assert m.get(a).role == "user" and m.get(a).text == "plain text is a user turn"
    assert m.get(b).text == "part one\n[image]" and m.get(b).tier == "verbatim" and m.get(b).confidence == 1.0
    assert m.get(c).timestamp == 1_700_000_000.0 and m.get(c).metadata == {"tool": "calc"}
    assert m.get(d).metadata == {"mood": "ok", "name": "ann"}


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   \n",
        {"role": "user"},
        {"role": "user", "content": None},
        {"role": "user", "content": "x", "tool_calls": []},
        {"role": "", "content": "x"},
        {"role": 3, "content": "x"},
        {"role": "user", "content": "x", "timestamp": "yesterday"},
        {"role": "user", "content": "x", "metadata": {"f": object()}},
        Turn(role="user", text="x", id=5),
        "lone \ud800 surrogate",
        42,
        None,
    ],
)
def test_bad_turns_raise_typed_errors_and_write_nothing(make_memory, bad):
    m = make_memory()
    m.add("before")
    with pytest.raises(InvalidInputError):
        m.add_many(["fine", bad])
    assert m.stats().turns_verbatim == 1
    assert len(m.events()) == 1


def test_bad_options(make_memory, tmp_path):
    m = make_memory()
    m.add("something")
    for kw in (dict(k=0), dict(k=2.5), dict(k=True)):
        with pytest.raises(InvalidInputError):
            m.recall("something", **kw)
    with pytest.raises(InvalidInputError):
        m.recall("")
    with pytest.raises(InvalidInputError):
        m.add_many("not a list")
    with pytest.raises(InvalidInputError):
        m.context(0)
    with pytest.raises(InvalidInputError):
        make_memory(tmp_path / "x", working_tokens=0)
    for levels in (0, 8, 255, True):
        with pytest.raises(InvalidInputError, match="page_levels"):
            make_memory(tmp_path / "y", page_levels=levels)


def test_working_memory_is_bounded_and_pages_out_the_oldest(make_memory, conversation):
    m = make_memory(working_tokens=400)
    conv = conversation(30)
    ids = m.add_many(conv[:10]) + [m.add(t) for t in conv[10:]]
    s = m.stats()
    assert s.working_tokens <= 400
    assert s.turns_verbatim + s.turns_archived == 30 and s.turns_archived > 0
    recent = [r.turn_id for r in m.recent()]
    assert recent == ids[-len(recent) :]  # the newest stay verbatim, in order
    assert s.pages["base"] >= 1 and s.visual_tokens == 256 * s.pages["base"]
    assert s.archived_text_tokens > 0 and s.compression == s.archived_text_tokens / s.visual_tokens
    kinds = [e.kind for e in m.events()]
    assert kinds.count("add") == 30 and "page_out" in kinds


def test_recall_reads_archived_turns_back_exactly(make_memory, oracle, conversation):
    m = make_memory(working_tokens=300)
    conv = conversation(24)
    ids = m.add_many(conv)
    archived = [i for i in ids if m.get(i, decode=False).tier != "verbatim"]
    assert len(archived) >= 10
    for i in archived[:5]:
        want = conv[ids.index(i)]["content"]
        hit = m.recall(want, k=3)[0]
        assert hit.turn_id == i
        assert hit.text == want and hit.tier == "base" and hit.confidence == pytest.approx(0.99)
        assert hit.score is not None and 0 < hit.retention <= 1  # score rule: tests/optimem/test_retrieval.py
    assert m.get(archived[0]).text == conv[ids.index(archived[0])]["content"]
    hits = m.recall(conv[ids.index(archived[0])]["content"], decode=False)
    assert hits[0].text is None and hits[0].confidence is None


def test_a_long_turn_spans_pages_and_comes_back_whole(make_memory, conversation):
    m = make_memory(working_tokens=200)
    long_text = " ".join(f"sentence{i} about the history of harbor number {i}." for i in range(400))
    tid = m.add({"role": "user", "content": long_text})
    m.add_many(conversation(6))
    assert len(m._archive.pages_of(tid)) >= 3
    assert m.get(tid).text == long_text
    assert m.stats().vectors > 7  # the long turn has several chunk vectors


def test_decoded_pages_are_cached_in_ram_only(make_memory, oracle, tmp_path, conversation):
    m = make_memory(working_tokens=300)
    conv = conversation(20)
    ids = m.add_many(conv)
    q = conv[0]["content"]
    m.recall(q, k=1)
    n = oracle.reads
    m.recall(q, k=1)
    assert oracle.reads == n  # served from the cache
    m2 = make_memory(tmp_path / "other", working_tokens=300, cache_pages=0)
    m2.add_many(conv)
    m2.recall(q, k=1)
    n = oracle.reads
    m2.recall(q, k=1)
    assert oracle.reads > n
    assert ids


@pytest.mark.parametrize("cache_pages", [0, 1])
def test_recall_of_several_turns_on_one_page_with_a_tiny_or_no_cache(make_memory, conversation, cache_pages):
    m = make_memory(working_tokens=300, cache_pages=cache_pages)
    conv = conversation(20)
    ids = m.add_many(conv)
    archived = [t for t in ids if m.get(t, decode=False).tier != "verbatim"]
    by_page: dict = {}
    for t in archived:
        by_page.setdefault(m._archive.pages_of(t)[0].id, []).append(t)
    same = next(ts for ts in by_page.values() if len(ts) >= 2)  # two archived turns sharing a page
    other = next(ts[0] for pid, ts in by_page.items() if ts[0] not in same)
    turns = m._read_turns([m._archive.get_turn(t) for t in [same[0], other, same[1]]], decode=True)
    for t in (same[0], other, same[1]):
        assert turns[t][0] == conv[ids.index(t)]["content"]
    assert len(m._cache) == cache_pages


def test_retention_ranks_equal_matches_by_freshness_and_recall_strengthens(make_memory, conversation):
    m = make_memory(policy=ForgettingPolicy(initial_strength=20))
    # the same turn between the same neighbours (a turn is embedded with the one before, and ranked with
    # the one after: optimem/retrieval.py), once old and once new
    m.add("hello")
    old = m.add("the password of the wifi router is tulip77")
    m.add("ok")
    m.add_many(conversation(10))
    m.add("hello")
    new = m.add("the password of the wifi router is tulip77")
    m.add("ok")
    hits = m.recall("the password of the wifi router is tulip77", k=2)
    assert [h.turn_id for h in hits] == [new, old]
    assert hits[0].similarity == pytest.approx(hits[1].similarity)
    assert hits[0].retention > hits[1].retention
    s_before = hits[1].strength
    after = m.get(old)
    assert after.strength > s_before  # strengthened by the recall ...
    assert after.retention == 1.0  # ... and its clock restarted
    recalls = [e for e in m.events(turn_id=old) if e.kind == "recall"]
    assert len(recalls) == 1 and recalls[0].detail["strength"][1] == after.strength
    m.recall("wifi router password", k=2, reinforce=False)
    assert m.get(old).strength == after.strength


def test_pages_fade_through_the_tiers(make_memory, oracle, conversation):
    policy = ForgettingPolicy(initial_strength=10)  # base R>=.5, small R>=.25, tiny R>=.1, then gist
    m = make_memory(working_tokens=300, policy=policy, auto_consolidate=False)
    conv = conversation(20)
    ids = m.add_many(conv)
    tid = ids[0]
    # a page is as sharp as its freshest turn: R = exp(-(now - seq) / 10) of the last turn drawn on it
    newest = max(
        m._archive.turns(m._archive.pages_of(tid)[0].turn_ids)[i].seq for i in m._archive.pages_of(tid)[0].turn_ids
    )
    seen = []
    for age in (5, 10, 20, 40):  # R = .61, .37, .14, .02
        m.consolidate(now=newest + age)
        page = m._archive.pages_of(tid)[0]
        seen.append(page.tier)
        assert _page_image(m, tid).size == (TIERS[page.tier].side,) * 2
    assert seen == ["base", "small", "tiny", "gist"]
    hit = m.get(tid)
    assert hit.tier == "gist" and hit.confidence == pytest.approx(0.5)
    assert hit.text == conv[0]["content"]  # the oracle still reads it; a real model would not
    tiers = [e.detail["tier"] for e in m.events() if e.kind == "tier"]
    assert ["base", "small"] in tiers and ["small", "tiny"] in tiers and ["tiny", "gist"] in tiers
    assert m.stats().visual_tokens < 256 * len(m._archive.pages())


def test_pinned_turns_keep_their_page_sharp(make_memory, conversation):
    m = make_memory(working_tokens=300, policy=ForgettingPolicy(initial_strength=5), auto_consolidate=False)
    conv = conversation(20)
    ids = m.add_many(conv)
    m.pin(ids[0])
    m.consolidate(now=1000)
    assert m._archive.pages_of(ids[0])[0].tier == "base"
    assert m.get(ids[0]).retention == 1.0
    others = {p.tier for p in m._archive.pages() if ids[0] not in p.turn_ids}
    assert others == {"gist"}
    m.unpin(ids[0])
    m.consolidate(now=1000)
    assert m._archive.pages_of(ids[0])[0].tier == "gist"
    assert [e.kind for e in m.events(turn_id=ids[0])][-2:] == ["pin", "unpin"]


def test_curve_forgets_below_the_floor(make_memory, conversation):
    policy = ForgettingPolicy(initial_strength=5, forget_below=0.01)
    m = make_memory(working_tokens=300, policy=policy, auto_consolidate=False)
    conv = conversation(20)
    ids = m.add_many(conv)
    archived = [i for i in ids if m.get(i, decode=False).tier != "verbatim"]
    report = m.consolidate(now=1000)
    assert set(report.turns_forgotten) == set(archived)
    assert report.pages_deleted >= 1 and m.stats().pages["gist"] == 0
    with pytest.raises(NotFoundError):
        m.get(archived[0])
    hits = m.recall(conv[0]["content"], k=30)
    assert not set(h.turn_id for h in hits) & set(archived)
    assert m.stats().turns_forgotten == len(archived)
    assert list(m._archive.path.glob("pages/default/*.png")) == []


def test_explicit_forget_paints_the_turn_off_its_page(make_memory, conversation):
    m = make_memory(working_tokens=300)
    conv = conversation(20)
    ids = m.add_many(conv)
    a, b = ids[0], ids[1]
    page = m._archive.pages_of(a)[0]
    assert b in page.turn_ids
    from optimem.memory import _layout_from_json

    layout = _layout_from_json(page.layout)
    mine = {k for k, s in enumerate(layout.segments) if s.turn_id == a}
    boxes = [(int(MARGIN_Y + p.row * CELL_H) + 1, int(MARGIN_Y + (p.row + 1) * CELL_H) - 1,
              int(MARGIN_X + p.col * CELL_W) + 1, int(MARGIN_X + (p.col + p.width) * CELL_W) - 1)
             for p in layout.pieces if p.segment in mine]
    others = [(int(MARGIN_Y + p.row * CELL_H) + 1, int(MARGIN_Y + (p.row + 1) * CELL_H) - 1,
               int(MARGIN_X + p.col * CELL_W) + 1, int(MARGIN_X + (p.col + p.width) * CELL_W) - 1)
              for p in layout.pieces if p.segment not in mine]
    before = np.asarray(_page_image(m, a))
    assert m.forget(a) == 1
    after = np.asarray(_page_image(m, b))
    assert min(before[y0:y1, x0:x1].min() for y0, y1, x0, x1 in boxes) < 128
    assert all(after[y0:y1, x0:x1].min() == 255 for y0, y1, x0, x1 in boxes)  # the turn's cells are blank
    assert all((after[y0:y1, x0:x1] == before[y0:y1, x0:x1]).all() for y0, y1, x0, x1 in others)  # the rest is not
    assert m.get(b).text == conv[1]["content"]
    with pytest.raises(NotFoundError):
        m.get(a)
    with pytest.raises(NotFoundError, match="nothing was forgotten"):
        m.forget([b, 10_000])
    assert m.get(b).tier == "base"  # the failed call changed nothing
    v = m.add("a verbatim turn to forget")
    m.forget([v])
    assert all(r.turn_id != v for r in m.recent())
    assert "redact" in [e.kind for e in m.events()]


def test_reopen_restores_everything(make_memory, tmp_path, embedder, oracle, conversation):
    m = make_memory(working_tokens=300)
    conv = conversation(25)
    ids = m.add_many(conv)
    q = conv[2]["content"]
    before = [(h.turn_id, h.text, h.tier) for h in m.recall(q, k=4, reinforce=False)]
    stats = m.stats()
    m.close()
    with pytest.raises(StoreClosedError):
        m.recall(q)
    m2 = Memory(tmp_path / "store", model=oracle, embedder=embedder, working_tokens=300)
    assert [(h.turn_id, h.text, h.tier) for h in m2.recall(q, k=4, reinforce=False)] == before
    s2 = m2.stats()
    assert (s2.turns_verbatim, s2.turns_archived, s2.pages, s2.vectors) == (
        stats.turns_verbatim,
        stats.turns_archived,
        stats.pages,
        stats.vectors,
    )
    assert m2.add("one more") == ids[-1] + 1
    after = [h.turn_id for h in m2.recall(q, k=4, reinforce=False)]
    m2.close()
    # the index files are only a cache: without them the store rebuilds from SQLite
    for f in (tmp_path / "store" / "index").iterdir():
        f.unlink()
    m3 = Memory(tmp_path / "store", model=oracle, embedder=embedder, working_tokens=300)
    assert [h.turn_id for h in m3.recall(q, k=4, reinforce=False)] == after
    m3.close()
    with pytest.raises(EmbedderError, match="built with embedder 'hashing-256'"):
        Memory(tmp_path / "store", model=oracle, embedder=HashingEmbedder(128))


def test_namespaces_are_isolated(make_memory, tmp_path, conversation):
    store = tmp_path / "shared"
    a = make_memory(store, namespace="alice", working_tokens=300)
    alice_ids = a.add_many(conversation(15, seed=1))
    a.close()
    b = make_memory(store, namespace="bob", working_tokens=300)
    bob_conv = conversation(15, seed=2)
    bob_ids = b.add_many(bob_conv)
    a_conv = conversation(15, seed=1)
    for t in a_conv:
        assert {h.turn_id for h in b.recall(t["content"], k=10, reinforce=False)} <= set(bob_ids)
    with pytest.raises(NotFoundError):
        b.get(alice_ids[0])
    with pytest.raises(NotFoundError):
        b.forget(alice_ids[0])
    b.close()
    a2 = make_memory(store, namespace="alice", working_tokens=300)
    assert a2.recall(a_conv[0]["content"], k=1)[0].turn_id == alice_ids[0]
    assert a2.stats().turns_archived + a2.stats().turns_verbatim == 15


def test_read_only_memory_recalls_without_changing_anything(make_memory, tmp_path, oracle, embedder, conversation):
    w = make_memory(working_tokens=300)
    conv = conversation(20)
    ids = w.add_many(conv)
    r = Memory(tmp_path / "store", model=oracle, read_only=True)  # the store names its embedder
    assert r.embedder.name == embedder.name
    hit = r.recall(conv[0]["content"], k=1)[0]
    assert hit.turn_id == ids[0] and hit.text == conv[0]["content"]
    assert w.get(ids[0]).strength == hit.strength  # not strengthened
    for call in (lambda: r.add("x"), lambda: r.forget(ids[0]), lambda: r.consolidate(), lambda: r.pin(ids[0])):
        with pytest.raises(ReadOnlyError):
            call()
    r.close()


def test_context_block_has_memories_and_recent_turns(make_memory, conversation):
    m = make_memory(working_tokens=300)
    m.add("My locker code at the gym is 4417.")
    m.add_many(conversation(20))
    m.add({"role": "user", "content": "what is my gym locker code again?"})
    block = m.context(400)
    assert "## Recalled memories" in block and "## Recent conversation" in block
    assert "4417" in block.split("## Recent conversation")[0]
    assert "confidence 0.99" in block
    assert "what is my gym locker code again?" in block.split("## Recent conversation")[1]
    assert m.reader.count_tokens(block) <= 400 + 10  # the joins add a few tokens
    assert m.context(400, query="marker zzz") != ""


def test_reconsolidation_rewrites_a_faded_page_from_its_reading(make_memory, oracle, conversation):
    m = make_memory(
        working_tokens=100, policy=ForgettingPolicy(initial_strength=5), auto_consolidate=False, reconsolidate=True
    )
    conv = conversation(8, words=10)  # one page of whole turns (a page with a split turn is left as is)
    ids = m.add_many(conv)
    m.consolidate(now=200)
    tid = ids[0]
    assert m._archive.pages_of(tid)[0].tier == "gist"
    hit = m.recall(conv[0]["content"], k=1)[0]
    assert hit.turn_id == tid and hit.tier == "gist"
    page = m._archive.pages_of(tid)[0]
    assert page.tier == "base" and _page_image(m, tid).size == (1024, 1024)
    assert "reconsolidate" in [e.kind for e in m.events()]
    assert m.get(tid).text == conv[0]["content"]  # the oracle read it perfectly, so the rewrite is exact


def test_hnsw_above_the_threshold(make_memory, conversation):
    m = make_memory(hnsw_threshold=20, working_tokens=300)
    conv = conversation(40)
    ids = m.add_many(conv)
    assert m.stats().index_kind == "hnsw"
    assert m.recall(conv[33]["content"], k=1)[0].turn_id == ids[33]
    m.forget(ids[33])
    assert all(h.turn_id != ids[33] for h in m.recall(conv[33]["content"], k=5))


def test_temporary_memory_is_deleted_on_close(oracle, embedder):
    m = Memory(model=oracle, embedder=embedder)
    m.add("temporary")
    path = m.path
    assert path.exists()
    m.close()
    assert not path.exists()


def test_no_model_and_none_shipped_says_how_to_pass_one(monkeypatch, tmp_path, embedder):
    import optimem.lazy_reader as lazy_module
    import optimem.reader as reader_module

    monkeypatch.setattr(reader_module, "shipped_model_dir", lambda: None)
    monkeypatch.setattr(lazy_module, "_shipped_dir", lambda: None)  # Memory looks without importing torch
    with pytest.raises(ModelNotFoundError, match="model="):
        Memory(tmp_path / "s", embedder=embedder)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        Memory(tmp_path / "s", model=tmp_path / "nope", embedder=embedder)


def test_seconds_clock_uses_timestamps(make_memory):
    day = 86400.0
    policy = ForgettingPolicy(clock="seconds", initial_strength=7 * day)
    m = make_memory(policy=policy, working_tokens=10_000)
    t0 = 1_800_000_000.0
    ids = []
    for ts in (t0, t0 + 6 * day):  # the same turn between the same neighbours, at two times
        m.add({"role": "user", "content": "hello", "timestamp": ts})
        ids.append(m.add({"role": "user", "content": "the boiler was serviced by Anna", "timestamp": ts}))
        m.add({"role": "user", "content": "ok", "timestamp": ts})
    old, new = ids
    hits = m.recall("the boiler was serviced by Anna", k=2, now=t0 + 7 * day, reinforce=False)
    assert [h.turn_id for h in hits] == [new, old]
    assert hits[1].retention == pytest.approx(np.exp(-1.0))
    assert hits[0].retention == pytest.approx(np.exp(-1 / 7))
    m.recall("the boiler was serviced by Anna", k=2, now=t0 + 7 * day)
    rec = m.get(old, now=t0 + 7 * day)
    assert rec.retention == pytest.approx(1.0) and rec.strength > 7 * day


def test_threads_can_share_a_memory(make_memory, conversation):
    import threading

    m = make_memory(working_tokens=300)
    conv = conversation(40)
    got: list[int] = []
    errors: list[BaseException] = []

    def worker(part):
        try:
            for t in part:
                got.append(m.add(t))
                m.recall(t["content"], k=2)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(conv[i::4],)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(set(got)) == 40
    s = m.stats()
    assert s.turns_verbatim + s.turns_archived == 40


@pytest.mark.parametrize("levels", [16, 256])
def test_stored_pages_keep_page_levels_grey_levels(make_memory, conversation, levels):
    m = make_memory(working_tokens=300, page_levels=levels)
    tid = m.add_many(conversation(12))[0]
    raw = Image.open(io.BytesIO(m._archive.read_page(m._archive.pages_of(tid)[0])))
    grey = np.asarray(raw.convert("L"))
    if levels == 16:  # a 4-bit palette of 16 evenly spaced greys; black and white kept exactly
        assert raw.mode == "P" and set(np.unique(grey)) <= {round(i * 17) for i in range(16)}
        assert grey.min() == 0 and grey.max() == 255
    else:
        assert raw.mode == "L" and len(np.unique(grey)) > 16


def _reading_only_asked(oracle_read, asked):
    """A read() over `oracle_read` that honours rows=: per image, the rows (whole) and (row, first col, end col)
    spans asked for keep their text, every other cell reads blank; each call's ask is recorded in `asked`
    (None for a whole-page read)."""
    from ocr_model.page import COLS

    def only(text, keep):
        whole = {k for k in keep if isinstance(k, int)}
        spans = [k for k in keep if not isinstance(k, int)]
        lines = text.split("\n")
        out = []
        for row, line in enumerate(lines):
            if row in whole:
                out.append(line)
                continue
            cells = line.ljust(COLS)
            mask = [False] * COLS
            for r, a, b in spans:
                if r == row:
                    mask[a:b] = [True] * (b - a)
            out.append("".join(ch if m else " " for ch, m in zip(cells, mask)).rstrip())
        return "\n".join(out)

    def read(images, tier, rows=None):
        full = oracle_read(images, tier)
        if rows is None:
            asked.append(None)
            return full
        out = []
        for r, keep in zip(full, rows):
            asked.append(keep)
            out.append(r if keep is None else type(r)(only(r.text, keep), r.confidence, r.complete, r.n_tokens))
        return out

    return read


def test_a_reader_that_reads_rows_is_asked_only_for_the_rows_of_the_turns_recalled(make_memory, oracle, conversation):
    """A reader with reads_rows reads only the rows that hold the turns asked for (the other rows come back
    blank); every turn still comes back exactly, and the cache knows which turns a partial reading holds."""
    asked = []
    oracle.read, oracle.reads_rows = _reading_only_asked(oracle.read, asked), True
    m = make_memory(working_tokens=300)
    conv = conversation(30)
    ids = m.add_many(conv)
    archived = [t for t in ids if m.get(t, decode=False).tier != "verbatim"]
    assert len(archived) >= 6
    asked.clear()
    for t in archived:
        assert m.get(t).text == conv[ids.index(t)]["content"]
    partial = [r for r in asked if r is not None]
    assert partial and all(len(r) < 38 for r in partial)  # pages shared by several turns: some rows only
    n = len(asked)
    for t in archived:  # every turn asked for once is in the cache now
        m.get(t)
    assert len(asked) == n
    # reconsolidation redraws whole pages from their reading: with it on, pages are read whole
    m.reconsolidate = True
    m._cache.clear()
    asked.clear()
    m.get(archived[0])
    assert asked == [None] * len(asked) and asked


def test_a_reader_that_reads_spans_is_asked_only_for_the_cells_of_the_turns_recalled(make_memory, oracle, conversation):
    """A reader with reads_spans gets, per page, (row, first col, end col) spans: exactly the pieces of the
    turns asked for (not the other turns' cells of rows they share), and every turn comes back exactly."""
    asked = []
    oracle.read, oracle.reads_rows, oracle.reads_spans = _reading_only_asked(oracle.read, asked), True, True
    m = make_memory(working_tokens=300)
    conv = conversation(30)
    ids = m.add_many(conv)
    archived = [t for t in ids if m.get(t, decode=False).tier != "verbatim"]
    assert len(archived) >= 6
    asked.clear()
    m._cache.clear()
    for t in archived:
        assert m.get(t).text == conv[ids.index(t)]["content"]
    assert asked and all(isinstance(x, tuple) and len(x) == 3 for spans in asked for x in spans)
    # a span never reaches into another turn's cells: on every page, the spans asked are that turn's pieces
    from optimem.memory import _layout_from_json

    pages = {p.id: p for t in archived for p in m._archive.pages_of(t)}
    shared = 0
    for p in pages.values():
        layout = _layout_from_json(p.layout)
        for seg in layout.segments:
            mine = set(layout.spans_of({seg.turn_id}))
            others = {x for s2 in layout.segments if s2.turn_id != seg.turn_id for x in layout.spans_of({s2.turn_id})}
            assert not mine & others
            shared += any(r in {o[0] for o in others} for r, _, _ in mine)
    assert shared  # dense pages: some rows hold two turns, so spans ask for fewer cells than rows would


def test_token_cache_keeps_the_grids_a_page_was_read_from_and_drops_them_with_it(make_memory, oracle, conversation):
    """A reader with reads_tokens gets, for a stored page, the grids kept from an earlier read of that very
    image (never of an older image of the page), the grids verification encoded are kept at page-out, a
    faded page's new image gets its own, and forgetting a page deletes its file; token_cache=False keeps
    none."""
    from optimem.store import tokens as token_files

    def digest(image):
        return np.frombuffer(hashlib.sha1(image.tobytes()).digest()[:8], np.uint8).reshape(2, 2, 2).astype(np.float16)

    given = []
    OracleRead = oracle.read

    def read(images, tier, rows=None, tokens=None):
        for image, kept in zip(images, tokens if tokens is not None else [{}] * len(images)):
            if tier in kept:  # a kept grid must be the one encoded from this very image
                assert np.array_equal(kept[tier], digest(image))
                given.append(tier)
            else:
                kept[tier] = digest(image)
        return OracleRead(images, tier)

    oracle.read, oracle.reads_tokens, oracle.fingerprint = read, True, "00112233aabbccdd"
    m = make_memory(working_tokens=300, policy=ForgettingPolicy(initial_strength=5), auto_consolidate=False)
    conv = conversation(30)
    ids = m.add_many(conv)
    kept = lambda: sorted(p.name.split(".")[0] for p in (m.path / token_files.TOKENS).rglob("*.npz"))  # noqa: E731
    stems = lambda: sorted(Path(p.file).stem for p in m._archive.pages())  # noqa: E731
    assert m._archive.pages() and kept() == stems()  # kept at page-out: the grids verification read
    archived = [t for t in ids if m.get(t, decode=False).tier != "verbatim"]
    assert len(archived) >= 6
    given.clear()
    assert m.get(archived[0]).text == conv[ids.index(archived[0])]["content"]
    assert given  # the recall read kept grids: no encoding
    old = {p.id: p.file for p in m._archive.pages()}
    m.consolidate(now=m._archive.clock() + 12)  # every page fades one or two tiers: new images
    new = {p.id: p.file for p in m._archive.pages()}
    assert new and all(new[i] != old[i] for i in new)
    assert kept() == stems()  # the old images' grids went with them; the faded ones were kept
    m._cache.clear()
    given.clear()
    for t in archived:
        assert m.get(t).text == conv[ids.index(t)]["content"]
    assert given
    m.forget(archived[: len(archived) // 2])
    assert kept() and set(kept()) <= set(stems())  # deleted and redacted pages' grids went with their images


def test_no_token_cache_when_turned_off(make_memory, oracle, conversation):
    from optimem.store import tokens as token_files

    calls = []

    def read(images, tier, rows=None, tokens=None):
        calls.append(tokens)
        return OracleRead(images, tier)

    OracleRead = oracle.read
    oracle.read, oracle.reads_tokens, oracle.fingerprint = read, True, "00112233aabbccdd"
    m = make_memory(working_tokens=300, token_cache=False)
    m.add_many(conversation(30))
    assert m._archive.pages() and calls and all(c is None for c in calls)
    assert not (m.path / token_files.TOKENS).exists()
