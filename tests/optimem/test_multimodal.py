"""Recalled pages as image content parts (Memory.context_images) and the providers' token formulas."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from optimem.errors import InvalidInputError
from optimem.multimodal import image_tokens


@pytest.mark.parametrize(
    "provider, detail, expected",
    [
        ("openai", "low", [85, 85, 85, 85]),
        ("openai", "high", [765, 765, 255, 255]),
        ("anthropic", "low", [1399, 547, 350, 197]),
    ],
)
def test_published_formulas_per_tier_side(provider, detail, expected):
    assert [image_tokens(s, provider, detail) for s in (1024, 640, 512, 384)] == expected


def _png_of(part: dict) -> bytes:
    if part["type"] == "image":
        return base64.b64decode(part["source"]["data"])
    return base64.b64decode(part["image_url"]["url"].split(",", 1)[1])


def test_context_images_sends_the_stored_pages_without_reading_them(make_memory, oracle):
    from tests.optimem.conftest import make_conversation

    m = make_memory(working_tokens=300)
    first = m.add("My locker code is 4417.")
    m.add_many(make_conversation(30))
    page = m._archive.pages_of(first)[0]
    reads = oracle.reads  # the verified page-out read each page once; context_images reads none
    for provider in ("openai", "anthropic"):
        ctx = m.context_images(4000, query="locker code 4417", k=3, provider=provider)
        images = [p for p in ctx.content if p["type"] in ("image_url", "image")]
        assert ctx.pages == len(images) >= 1 and ctx.provider == provider
        assert m._archive.read_page(page) in [_png_of(p) for p in images]  # the stored page, as stored
        side = Image.open(io.BytesIO(_png_of(images[0]))).size[0]
        assert ctx.image_tokens == sum(image_tokens(side, provider) for _ in images)
        assert ctx.page_text_tokens > ctx.image_tokens if provider == "openai" else ctx.page_text_tokens > 0
        assert ctx.content[-1]["type"] == "text" and ctx.content[-1]["text"].startswith("## Recent conversation")
        assert ctx.message()["role"] == "user"
    assert oracle.reads == reads  # nothing was read back by optimem's own model


def test_context_images_budget_and_bad_arguments(make_memory):
    from tests.optimem.conftest import make_conversation

    m = make_memory(working_tokens=300)
    m.add_many(make_conversation(30))
    assert m.context_images(100, query="marker3x", k=5).pages == 0  # half of 100 < one page (85)
    assert m.context_images(200, query="marker3x", k=5, provider="openai").image_tokens <= 100
    with pytest.raises(InvalidInputError, match="provider"):
        m.context_images(1000, provider="gemini")
    with pytest.raises(InvalidInputError, match="detail"):
        m.context_images(1000, detail="auto")
