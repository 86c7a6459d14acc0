"""The raw text of a paged-out turn is in no file of the store: not in SQLite, its WAL, logs or caches."""

from __future__ import annotations

import uuid
from pathlib import Path

from optimem import Memory


def _secret(i: int) -> str:
    return f"secret-{uuid.uuid4().hex}-{i}"


def _files_containing(store: Path, needle: str) -> list[str]:
    raw = needle.encode("utf-8")
    return [str(f.relative_to(store)) for f in store.rglob("*") if f.is_file() and raw in f.read_bytes()]


def test_paged_out_text_is_in_no_file(make_memory, tmp_path):
    store = tmp_path / "store"
    m = make_memory(store, working_tokens=200)
    texts = [f"{_secret(i)} the code for vault {i} is {1000 + i}, héllo 世界 {i}" for i in range(12)]
    texts.append(" ".join([_secret(99)] + ["a long turn that overflows onto more pages"] * 150))
    ids = m.add_many([{"role": "user", "content": t} for t in texts])
    late = [f"{_secret(100 + i)} still in working memory" for i in range(3)]
    ids += [m.add(t) for t in late]
    texts += late
    secrets = {tid: text.split()[0] for tid, text in zip(ids, texts)}
    paged = {i for i in ids if m.get(i, decode=False).tier != "verbatim"}
    assert len(paged) >= 10 and len(paged) < len(ids)
    forgotten: set[int] = set()

    def check() -> None:
        for tid, secret in secrets.items():
            where = _files_containing(store, secret)
            if tid in paged or tid in forgotten:
                assert where == [], f"turn {tid} found in {where}"
            else:
                assert where, "the scan must find verbatim text (else it proves nothing)"

    check()  # while the store is open: page-out truncated the WAL already
    m.recall(texts[0], k=3)  # decoding puts text in RAM only
    victim = m.recent()[0].turn_id
    m.forget(victim)  # explicit delete of a verbatim turn: its text goes too
    forgotten.add(victim)
    check()
    m.close()
    check()
    Memory(store, model=m.reader, embedder=m.embedder).close()  # reopening writes nothing back
    check()
