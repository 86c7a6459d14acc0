"""Fixtures for the memory tests: a really tiny random-weight model, and an oracle reader.

The oracle reads a page perfectly by looking up the text the renderer drew on it (it spies on
render_turns), so tests can check the whole add -> page-out -> recall -> split flow exactly; the
tiny model checks that the real reader is wired up right (its random weights read nothing useful).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

import optimem.memory as memory_module
from ocr_model import page as pg
from optimem.embed import HashingEmbedder
from optimem.reader import Reading

TIER_CONFIDENCE = {"large": 1.0, "base": 0.99, "small": 0.9, "tiny": 0.8, "gist": 0.5}


def _key(image: Image.Image) -> str:
    return hashlib.sha1(image.convert("L").tobytes() + repr(image.size).encode()).hexdigest()


def _thumb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((96, 96), Image.Resampling.BILINEAR), dtype=np.float32)


class OracleReader:
    """A PageReader that knows every page the renderer drew in this test.

    It matches an image exactly (the page at any chain of tiers consolidation may have applied), else
    by the nearest thumbnail (redacted pages), and returns the page's text. Confidence depends on the
    tier only, so tests can see it flow through. Counts one token per 4 characters.
    """

    name = "oracle"

    def __init__(self) -> None:
        self.pages: list[pg.Page] = []
        self.exact: dict[str, int] = {}
        self.reads = 0  # pages read, to test the RAM cache

    def observe(self, pages: Sequence[pg.Page]) -> None:
        for page in pages:
            i = len(self.pages)
            self.pages.append(page)
            lower = ["small", "tiny", "gist"]
            for n in range(1, len(lower) + 1):
                for path in itertools.combinations(lower, n):
                    img = page.image
                    for tier in path:
                        img = pg.page_at_tier(img, tier)
                    self.exact[_key(img)] = i
            self.exact[_key(page.image)] = i

    def _find(self, image: Image.Image) -> pg.Page:
        i = self.exact.get(_key(image))
        if i is None:
            t = _thumb(image)
            i = int(np.argmin([np.abs(_thumb(p.image) - t).mean() for p in self.pages]))
        return self.pages[i]

    def read(self, images: Sequence[Image.Image], tier: str) -> list[Reading]:
        self.reads += len(images)
        out = []
        for image in images:
            assert image.size == (pg.TIERS[tier].side,) * 2, "Memory must pass images at their tier's size"
            text = self._find(image).text
            out.append(Reading(text, TIER_CONFIDENCE[tier], True, len(text) // 4))
        return out

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1


@pytest.fixture
def oracle(monkeypatch) -> OracleReader:
    reader = OracleReader()
    real = memory_module.render_turns

    def spy(turns, **kw):
        pages = real(turns, **kw)
        reader.observe(pages)
        return pages

    monkeypatch.setattr(memory_module, "render_turns", spy)
    return reader


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(256)


@pytest.fixture
def make_memory(tmp_path, oracle, embedder):
    """Memory(tmp_path/'store', model=oracle, embedder=hashing, ...) closed at teardown."""
    from optimem import Memory

    opened = []

    def make(path=None, **kw):
        kw.setdefault("model", oracle)
        kw.setdefault("embedder", embedder)
        kw.setdefault("keep_recent", 0)  # the tests page out small conversations; test_pageout checks keep_recent
        m = Memory(tmp_path / "store" if path is None else path, **kw)
        opened.append(m)
        return m

    yield make
    for m in opened:
        m.close()


def make_conversation(n: int, *, words: int = 40, seed: int = 0) -> list[dict]:
    """n distinct turns of ~words words each; turn i mentions the unique token 'marker{i}x'."""
    rng = np.random.default_rng(seed)
    vocab = [
        "apple",
        "river",
        "engine",
        "violet",
        "cloud",
        "pencil",
        "harbor",
        "garden",
        "silver",
        "thunder",
        "orange",
        "mountain",
        "window",
        "candle",
        "forest",
        "rocket",
        "bridge",
        "island",
        "copper",
        "meadow",
    ]
    out = []
    for i in range(n):
        body = " ".join(rng.choice(vocab, size=words))
        out.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"marker{i}x {body}."})
    return out


@pytest.fixture
def conversation():
    """make_conversation(n, words=40, seed=0): n distinct turns, turn i starts with 'marker{i}x'."""
    return make_conversation
