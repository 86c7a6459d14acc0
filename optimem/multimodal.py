"""Recalled pages as image content parts, for chat models that read images (Memory.context_images).

    image_part(png, provider, detail)      one page image as an OpenAI or Anthropic content part
    image_tokens(side, provider, detail)   the prompt tokens the provider's published formula charges for it
    ImageContext                           what Memory.context_images returns

Instead of reading archived pages back with optimem's own OCR model, a model that reads images can be shown
the pages themselves: the stored PNG (16 greys, at its tier's size: 1024, 640, 512 or 384 px square).

Prompt tokens per page, from the providers' published formulas (not measured here; reading accuracy of these
pages by those models was NOT measured here either):

    provider            formula                                                        1024   640   512   384
    openai, low         85 per image, any size (GPT-4o / 4.1 "detail": "low")            85    85    85    85
    openai, high        85 + 170 per 512 px tile, after fitting into 2048 px and            765   765   255   255
                        scaling the short side down to 768 px
    anthropic           width * height / 750, rounded up (Claude; long edge > 1568 px     1399   547   350   197
                        is resized first)

Whether a page at "low" detail (OpenAI resizes it to 512 px) is still legible to the model is exactly what
was not measured: optimem's own reader needs the tier's own pixels.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

from optimem.errors import InvalidInputError

__all__ = ["PROVIDERS", "DETAILS", "ImageContext", "image_part", "image_tokens"]

PROVIDERS = ("openai", "anthropic")
DETAILS = ("low", "high")


def check(provider: str, detail: str) -> None:
    if provider not in PROVIDERS:
        raise InvalidInputError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if detail not in DETAILS:
        raise InvalidInputError(f"detail must be one of {', '.join(DETAILS)} (OpenAI's image detail), got {detail!r}")


def image_tokens(side: int, provider: str = "openai", detail: str = "low") -> int:
    """Prompt tokens for one square page image of `side` px (module doc: the providers' formulas)."""
    check(provider, detail)
    if provider == "anthropic":
        s = min(side, 1568)
        return math.ceil(s * s / 750)
    if detail == "low":
        return 85
    s = min(side, 2048)
    s = min(s, 768)  # a square: the short side is scaled down to 768 px (never up)
    tiles = math.ceil(s / 512) ** 2
    return 85 + 170 * tiles


def image_part(png: bytes, provider: str = "openai", detail: str = "low") -> dict[str, Any]:
    """A PNG as a content part: OpenAI {"type": "image_url", ...} or Anthropic {"type": "image", ...}."""
    check(provider, detail)
    data = base64.b64encode(png).decode("ascii")
    if provider == "anthropic":
        return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}", "detail": detail}}


@dataclass(frozen=True)
class ImageContext:
    """A prompt block with recalled pages as images. `content` is a list of content parts in the provider's
    format (text, then one image per page, then the recent turns as text); `message()` wraps it as a user
    message. image_tokens: what the provider's formula charges for the images; page_text_tokens: the text
    tokens (optimem's tokenizer) of the turns drawn on those pages, i.e. what reading them as text would
    cost; text_tokens: the text parts."""

    provider: str
    content: list[dict[str, Any]] = field(repr=False)
    pages: int
    image_tokens: int
    page_text_tokens: int
    text_tokens: int

    def message(self, role: str = "user") -> dict[str, Any]:
        return {"role": role, "content": self.content}
