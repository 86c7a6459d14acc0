"""What a turn is remembered by (speaker, previous turn, bounded chunks), the hybrid embedder and the ranking rule."""

from __future__ import annotations

import numpy as np
import pytest

from optimem.embed import (
    HashingEmbedder,
    HybridEmbedder,
    embed_threads,
    embedder_by_name,
    lexical_terms,
    lexical_vectors,
)
from optimem.errors import EmbedderError, InvalidInputError
from optimem.forgetting import ForgettingPolicy
from optimem.retrieval import (
    CONTEXT_CHARS,
    Candidate,
    document_texts,
    query_text,
    rank,
    speaker,
    spread_chunks,
)


def test_speaker_is_the_name_else_the_role():
    assert speaker("user", {"name": "Caroline"}) == "Caroline"
    assert speaker("assistant", {"name": "  "}) == "assistant"
    assert speaker("user", None) == "user"


def test_documents_carry_speaker_and_the_end_of_the_previous_turn():
    prev = "x" * 1000 + " have you ever been to Lisbon?"
    docs = document_texts("Yes, twice.", "Caroline", ("Melanie", prev))
    assert docs == [f"Melanie: {prev[-CONTEXT_CHARS:]}\nCaroline: Yes, twice."]
    assert document_texts("Yes, twice.", "user") == ["user: Yes, twice."]
    long = " ".join(f"w{i}" for i in range(3000))  # ~15 chunks of 1000 characters
    docs = document_texts(long, "user", ("assistant", "before"), max_chunks=4)
    assert len(docs) == 4 and docs[0].startswith("assistant: before\nuser: w0 ")
    assert docs[-1].endswith("w2999") and all(d.count("\n") == 0 for d in docs[1:])


def test_spread_chunks_keeps_first_and_last_evenly():
    chunks = [str(i) for i in range(100)]
    picked = spread_chunks(chunks, 5)
    assert picked == ["0", "25", "50", "74", "99"] or picked == ["0", "25", "50", "75", "99"]
    assert spread_chunks(chunks[:3], 5) == chunks[:3]
    assert spread_chunks(chunks, 1) == ["0"]
    with pytest.raises(InvalidInputError, match="max_chunks"):
        spread_chunks(chunks, 0)


def test_long_queries_keep_head_and_tail():
    q = "a" * 5000 + "WHAT IS THE CODE?"
    t = query_text(q, max_chars=100)
    assert len(t) <= 101 and t.startswith("a" * 50) and t.endswith("WHAT IS THE CODE?")
    assert query_text("short") == "short"


def test_rank_next_turn_lifts_and_retention_discounts():
    c = [Candidate(1, 0.80, seq=10, retention=1.0), Candidate(2, 0.79, seq=20, retention=1.0),
         Candidate(3, 0.78, seq=21, retention=1.0), Candidate(4, 0.70, seq=30, retention=1.0)]
    flat, default = ForgettingPolicy(retention_weight=0.0), ForgettingPolicy()
    plain = [x.turn_id for _, x in rank(c, flat, next_weight=0.0)]
    assert plain == [1, 2, 3, 4]
    lifted = [x.turn_id for _, x in rank(c, flat, next_weight=0.5)]
    assert lifted[0] == 2  # its next turn (seq 21) is also close to the query
    faded = [Candidate(1, 0.80, 10, retention=0.0), Candidate(2, 0.79, 20, retention=1.0), Candidate(3, 0.5, 40, 1.0)]
    assert [x.turn_id for _, x in rank(faded, default, next_weight=0.0)][:2] == [2, 1]
    assert rank([], default) == []


def test_lexical_vectors_keep_no_words_and_unit_norm():
    assert lexical_terms("The painters painted, painting!") == ["painter", "paint", "paint"]
    v = lexical_vectors(["the locker code 4417", "ok, thanks", ""], 64)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)  # term-less texts too
    assert v.dtype == np.float32


def test_hybrid_embedder_mixes_dense_and_lexical():
    e = HybridEmbedder(HashingEmbedder(64), lexical_dim=128, lexical_weight=1.0)
    assert e.name == "hashing-64+lex128" and e.dim == 192
    docs = e.embed_documents(["locker code 4417", "dinner was pasta"])
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    q = e.embed_queries(["lockers code?"])  # "lockers" only meets "locker" through the lexical stem
    assert (q @ docs.T).argmax() == 0
    rebuilt = embedder_by_name("hashing-64+lex128")
    np.testing.assert_array_equal(rebuilt.embed_documents(["x y"]), e.embed_documents(["x y"]))
    with pytest.raises(EmbedderError, match="lexical_dim"):
        HybridEmbedder(HashingEmbedder(64), lexical_dim=4)


def test_embed_threads_default_env_and_errors(monkeypatch):
    monkeypatch.delenv("OPTIMEM_EMBED_THREADS", raising=False)
    assert 1 <= embed_threads() <= 2
    assert embed_threads(3) == 3
    monkeypatch.setenv("OPTIMEM_EMBED_THREADS", "1")
    assert embed_threads() == 1
    monkeypatch.setenv("OPTIMEM_EMBED_THREADS", "many")
    with pytest.raises(EmbedderError, match="OPTIMEM_EMBED_THREADS"):
        embed_threads()
    with pytest.raises(EmbedderError, match="positive int"):
        embed_threads(0)


def test_memory_embeds_the_speaker_name(make_memory):
    m = make_memory(working_tokens=10_000)
    a = m.add({"role": "user", "name": "Caroline", "content": "I adopted a puppy last week."})
    b = m.add({"role": "assistant", "name": "Melanie", "content": "I adopted a puppy last week."})
    assert m.recall("Caroline puppy", k=1, decode=False)[0].turn_id == a
    assert m.recall("Melanie puppy", k=1, decode=False)[0].turn_id == b


def test_memory_finds_an_answer_by_its_question(make_memory):
    m = make_memory(working_tokens=10_000)
    m.add({"role": "user", "content": "I had pasta for dinner."})
    m.add({"role": "assistant", "content": "Have you ever been to Lisbon?"})
    yes = m.add({"role": "user", "content": "Yes, twice, with my sister."})
    for i in range(5):
        m.add(f"unrelated turn number {i} about the weather")
    hits = {h.turn_id: h.similarity for h in m.recall("Lisbon", k=3, decode=False)}
    assert hits.get(yes, 0.0) > 0.1  # the answer's vector carries the question before it


def test_memory_bounds_the_vectors_of_a_long_turn(make_memory):
    from optimem.retrieval import MAX_CHUNKS

    m = make_memory(working_tokens=100_000)
    m.add(" ".join(f"word{i}" for i in range(20_000)))  # ~140 chunks of 1000 characters
    assert m.stats().vectors == MAX_CHUNKS


def test_every_word_of_a_long_turn_is_in_some_lexical_text():
    from optimem.retrieval import document_words

    long = " ".join(f"w{i}" for i in range(3000))
    words = document_words(long, "user", ("assistant", "before"), max_chunks=4)
    assert len(words) == len(document_texts(long, "user", max_chunks=4)) == 4
    assert words[0].startswith("assistant: before\nuser: w0 ")
    seen = set(" ".join(words).split())
    assert all(f"w{i}" in seen for i in range(3000))


def test_memory_finds_a_word_deep_in_a_long_turn_lexically(make_memory):
    from optimem.embed import HashingEmbedder, HybridEmbedder

    m = make_memory(working_tokens=100_000, embedder=HybridEmbedder(HashingEmbedder(64), lexical_weight=2.0))
    filler = [" ".join(f"filler{j}x{i}" for j in range(120)) for i in range(60)]
    filler[33] += " zebracrossing"  # in a chunk that is not embedded densely (60 chunks, 8 embedded)
    long = m.add(" ".join(filler))
    other = m.add("a short turn about the weather")
    hits = m.recall("zebracrossing", k=2, decode=False)
    assert hits[0].turn_id == long and other in {h.turn_id for h in hits}
