"""Training data for the optical reader: a text corpus from installed packages, synthetic text, and pages.

Every page is made by the page format's own renderer (ocr_model.page: `render_turns` for conversation pages,
exactly as Memory pages turns out, and `render_plain_page` for documents), resampled and stored as Memory
stores it (`ocr_model.page.codec.as_stored`), so the model is trained on the pixels it will read.

    python -m ocr_model.data build --out corpus/          # collect text shipped by packages into corpus/
    python -m ocr_model.data preview --corpus corpus/ --out preview/   # render a few sample pages

Corpus layout: `corpus/<kind>.<split>.txt.xz` (xz: a third smaller than gzip, which matters for the 64 MiB that
travel to the GPU machine; `.txt.gz` is read too), documents separated by RS (U+001E); split is `train` or
`heldout` by a hash of the document's source name and index (1 in 20 held out). Kinds:
    prose     Python documentation (.rst sources), Jargon File, KJV Bible, Devil's Dictionary, Debian reference
    dialogue  chatterbot-corpus conversations and fortune cookies, formatted as chat turns
    code      Python standard library sources (indentation kept exactly)
    words     a word list (used by the synthetic generators)
Synthetic kinds (made on the fly, seeded): random characters, random words, structured records (JSON,
tables, logs, key-value facts with random IDs, dates, URLs, numbers). A language model cannot guess these,
so the only way to lower their loss is to read the image.

Glyph targets: the renderer puts every character in a known cell of a fixed grid; each visual token predicts
the glyph classes of the cells its page region owns (`ocr_model.glyphs` has the geometry and the heads).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
import os
import random
import re
import string
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ocr_model import page as pg
from ocr_model.page.glyphs import EXTRA_CHARS, glyph_classes, slot_table

RS = "\x1e"
REAL_KINDS = ("prose", "dialogue", "code")
SYNTHETIC_KINDS = ("random_chars", "random_words", "structured")
KINDS = REAL_KINDS + SYNTHETIC_KINDS  # the evaluation's text kinds (its "all" averages these)
EXTRA_KINDS = ("symbols",)  # added after run s2: trained and reported on its own, outside "all"
# every script the shipped fonts draw, from ocr_model.corpus_scripts (read when its files are there, else the
# synthetic `script_text` of the same script), and what Memory draws: conversation pages (render_turns, the
# dense layout), fenced highlighted code, emoji chat, any drawable character, typographic look-alikes
SCRIPT_KINDS = ("latin", "greek", "cyrillic", "zh", "ja", "ko")
MEMORY_KINDS = ("chat", "fenced_code", "emoji", "all_glyphs", "lookalikes")

# ----------------------------------------------------------------------------------------------------------
# glyph targets (classes and slot geometry live in ocr_model.glyphs, shared with the reader)

def glyph_targets(page: pg.Page, grid: int) -> np.ndarray:
    """(g, g, S) int64 glyph classes per token slot; -100 where a slot owns no cell."""
    cls = glyph_classes(page.cell_codes())
    table = slot_table(grid)
    flat = cls.reshape(-1)
    out = np.where(table >= 0, flat[np.clip(table, 0, None)], -100)
    return out


# ----------------------------------------------------------------------------------------------------------
# corpus building (runs where the Debian/PyPI packages are installed; the result travels to the GPU machine)

def _read_gz(path: str) -> str:
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()


def _prose_docs() -> list[tuple[str, str]]:
    docs: list[tuple[str, str]] = []
    root = Path("/usr/share/doc/python3.11/html/_sources")
    for p in sorted(root.rglob("*.rst.txt")):
        docs.append((f"pydoc:{p.relative_to(root)}", p.read_text(encoding="utf-8", errors="replace")))
    jargon = "/usr/share/doc/jargon-text/jargon.txt.gz"
    if os.path.exists(jargon):
        text = _read_gz(jargon)
        for k in range(0, len(text), 20000):
            docs.append((f"jargon:{k}", text[k:k + 20000]))
    try:
        kjv = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], capture_output=True, text=True, timeout=120, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        kjv = ""
    for k in range(0, len(kjv), 20000):
        docs.append((f"kjv:{k}", kjv[k:k + 20000]))
    for name in ("/usr/share/debian-reference/debian-reference.en.txt.gz",):
        if os.path.exists(name):
            text = _read_gz(name)
            for k in range(0, len(text), 20000):
                docs.append((f"debref:{k}", text[k:k + 20000]))
    devil = "/usr/share/dictd/devil.dict.dz"
    if os.path.exists(devil):
        text = _read_gz(devil)
        for k in range(0, len(text), 20000):
            docs.append((f"devil:{k}", text[k:k + 20000]))
    return docs


def _dialogue_docs() -> list[tuple[str, str]]:
    docs: list[tuple[str, str]] = []
    try:
        import chatterbot_corpus  # type: ignore
        import yaml  # type: ignore
        root = Path(chatterbot_corpus.__file__).parent / "data" / "english"
        for p in sorted(root.glob("*.yml")):
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
            for n, conv in enumerate(data.get("conversations", []) or []):
                turns = [str(t) for t in conv if t is not None]
                text = "\n".join(("User: " if k % 2 == 0 else "Assistant: ") + t for k, t in enumerate(turns))
                docs.append((f"chatterbot:{p.name}:{n}", text))
    except ImportError:
        print("chatterbot-corpus or pyyaml not installed: skipping its dialogues", file=sys.stderr)
    root = Path("/usr/share/games/fortunes")
    if root.exists():
        for p in sorted(root.iterdir()):
            if p.suffix or p.is_dir():
                continue
            text = p.read_text(encoding="utf-8", errors="replace")
            for n, cookie in enumerate(text.split("\n%\n")):
                if cookie.strip():
                    docs.append((f"fortune:{p.name}:{n}", cookie.strip("\n")))
    return docs


def _code_docs(limit_bytes: int = 12_000_000) -> list[tuple[str, str]]:
    docs: list[tuple[str, str]] = []
    root = Path(os.__file__).parent
    total = 0
    for p in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if "test" in p.parts or "site-packages" in p.parts or "idlelib" in p.parts:
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        docs.append((f"stdlib:{p.relative_to(root)}", text))
        total += len(text)
        if total > limit_bytes:
            break
    return docs


def _is_heldout(name: str) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 20 == 0


def build_corpus(out: str) -> dict[str, dict[str, int]]:
    """Collect the corpus into `out`; returns {kind: {split: characters}}."""
    os.makedirs(out, exist_ok=True)
    sizes: dict[str, dict[str, int]] = {}
    for kind, docs in (("prose", _prose_docs()), ("dialogue", _dialogue_docs()), ("code", _code_docs())):
        for split in ("train", "heldout"):
            chosen = [text for name, text in docs if _is_heldout(name) == (split == "heldout")]
            with lzma.open(os.path.join(out, f"{kind}.{split}.txt.xz"), "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
                f.write(RS.join(chosen))
            sizes.setdefault(kind, {})[split] = sum(len(t) for t in chosen)
    words = Path("/usr/share/dict/american-english").read_text(encoding="utf-8").split()
    words = sorted({w for w in words if w.isascii() and "'" not in w})
    with lzma.open(os.path.join(out, "words.txt.xz"), "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write("\n".join(words))
    sizes["words"] = {"train": len(words)}
    with open(os.path.join(out, "sizes.json"), "w") as f:
        json.dump(sizes, f, indent=1)
    return sizes


# ----------------------------------------------------------------------------------------------------------
# text sampling

def _read_corpus_file(root: str, stem: str) -> str:
    for ext, opener in ((".xz", lzma.open), (".gz", gzip.open)):
        path = os.path.join(root, stem + ext)
        if os.path.exists(path):
            with opener(path, "rt", encoding="utf-8") as f:
                return f.read()
    raise FileNotFoundError(f"{os.path.join(root, stem)}.xz is missing: build the corpus with "
                            f"`python -m ocr_model.data build --out {root}`")


_ANSI = re.compile("\x1b\\[[0-9;]*[A-Za-z]")  # terminal colour codes some fortune files carry


class Corpus:
    """The corpus of one split, held in memory; `sample(kind, rng)` returns page-sized text."""

    def __init__(self, root: str, split: str = "train"):
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        self.texts: dict[str, str] = {}
        for kind in REAL_KINDS:
            self.texts[kind] = _read_corpus_file(root, f"{kind}.{split}.txt")
        for kind in SCRIPT_KINDS:  # optional: python -m ocr_model.corpus_scripts --out DIR
            try:
                self.texts[kind] = _ANSI.sub("", _read_corpus_file(root, f"{kind}.{split}.txt"))
            except FileNotFoundError:
                pass
        self.words = [w for w in _read_corpus_file(root, "words.txt").split("\n") if w]

    def sample(self, kind: str, rng: random.Random, n_chars: int = 3200) -> str:
        if kind in self.texts:
            text = self.texts[kind]
            start = rng.randrange(max(1, len(text) - n_chars))
            nl = text.find("\n", start)  # start at a line start so indentation is whole
            start = nl + 1 if 0 <= nl < start + 400 else start
            return text[start:start + n_chars].replace(RS, "\n\n")
        if kind == "random_chars":
            return random_chars(rng, n_chars)
        if kind == "random_words":
            return random_words(rng, self.words, n_chars)
        if kind == "structured":
            return structured(rng, self.words, n_chars)
        if kind == "symbols":
            return symbols(rng, self.words, n_chars)
        if kind in SCRIPT_KINDS:
            return script_text(rng, kind, n_chars)
        if kind == "fenced_code":
            return fenced_code(self, rng, n_chars)
        if kind == "emoji":
            return emoji_text(rng, self.words, n_chars)
        if kind == "all_glyphs":
            return all_glyphs(rng, self.words, n_chars)
        if kind == "lookalikes":
            return lookalikes(rng, self.words, n_chars)
        raise ValueError(f"unknown text kind {kind!r}; expected one of {ALL_KINDS}")


ALL_KINDS = KINDS + EXTRA_KINDS + SCRIPT_KINDS + MEMORY_KINDS
_PRINTABLE = string.ascii_letters + string.digits + string.punctuation


# ----------------------------------------------------------------------------------------------------------
# every drawable character, by script (the glyph class table is exactly the drawable characters)

_SCRIPT_RANGES = {
    "latin": ((0xC0, 0x250), (0x1E00, 0x1F00)),
    "greek": ((0x370, 0x400), (0x1F00, 0x2000)),
    "cyrillic": ((0x400, 0x530),),
    "zh": ((0x4E00, 0xA000),),
    "ja": ((0x3040, 0x3100), (0x4E00, 0xA000)),
    "ko": ((0xAC00, 0xD7A4),),
    "emoji": ((0x1F300, 0x1FB00), (0x2600, 0x27C0)),
    "symbols": ((0xA0, 0xC0), (0x2000, 0x2BFF), (0x3000, 0x3040), (0xFF01, 0xFFEF), (0x250, 0x370)),
}


@cache
def script_chars(script: str) -> tuple[str, ...]:
    """The characters with a glyph class of their own in one script's code point ranges."""
    from ocr_model.page.glyphs import S3_CLASSES, classes

    table = classes()
    inside = [c for c in table if c and c != "\ufffd" and ord(c) >= 0xA0
              and any(a <= ord(c) < b for a, b in _SCRIPT_RANGES[script])]
    if script == "latin":  # plus run s3's classes, which are mostly Latin-1
        inside += [c for c in table[96:S3_CLASSES] if c not in inside]
    return tuple(inside)


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def script_text(rng: random.Random, script: str, n_chars: int) -> str:
    """Words of random characters of one script (uniform over its glyph classes) between ASCII words and
    punctuation: every class of the script is seen, not only the frequent ones a corpus has."""
    chars = script_chars(script)
    lines, total = [], 0
    while total < n_chars:
        width, out, cells = rng.randint(20, pg.COLS), [], 0
        while cells < width:
            if rng.random() < 0.15:
                w = rng.choice(["the", "and", "ID", "2024", "ok", "—", ",", ".", ":", "(x)", "-", "12.5%"])
            else:
                w = "".join(rng.choice(chars) for _ in range(rng.randint(1, 8)))
            out.append(w)
            cells += len(w) + 1 + sum(1 for c in w if _wide(c))
        line = " ".join(out)
        cells, cut = 0, 0
        for cut, c in enumerate(line):
            cells += 2 if _wide(c) else 1
            if cells > pg.COLS:
                break
        else:
            cut = len(line)
        lines.append(line[:cut].rstrip())
        total += cut + 1
    return "\n".join(lines)


def all_glyphs(rng: random.Random, words: list[str], n_chars: int) -> str:
    """Every script's characters mixed on one page (one script per line), so no class goes unseen."""
    scripts = tuple(_SCRIPT_RANGES)
    lines, total = [], 0
    while total < n_chars:
        line = script_text(rng, rng.choice(scripts), 1)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def emoji_text(rng: random.Random, words: list[str], n_chars: int) -> str:
    """Chat-like lines: words with emoji between and after them, sometimes several in a row."""
    em = script_chars("emoji")
    lines, total = [], 0
    while total < n_chars:
        out = []
        for _ in range(rng.randint(2, 9)):
            out.append(rng.choice(words) if rng.random() < 0.6 else "".join(rng.choice(em) for _ in range(rng.randint(1, 3))))
        line = " ".join(out)[: pg.COLS // 2 + 5]
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


# groups of characters that look alike but are drawn differently; shown side by side so the heads learn
# the difference (pixel-identical pairs cannot be told apart and are left to the verified page-out)
LOOKALIKE_GROUPS = (",‚", "'‘’′", "\"“”″„", "-–—−", "|│┃¦", ">»›", "<«‹", "~∼〜", "*∗⋅·•", "xX×", "oO0°º",
                    "1lI|", ".…", "=═≡", "+┼†", "^ˆ", "`´‘", "!¡", "?¿", ":：", ";；", "/∕", "\\＼")


def lookalikes(rng: random.Random, words: list[str], n_chars: int) -> str:
    """Prose-like lines in which the members of a look-alike group stand in for each other (quotes, commas,
    dashes, bars, guillemets), plus lines of the groups side by side."""
    lines, total = [], 0
    while total < n_chars:
        if rng.random() < 0.3:
            group = rng.choice(LOOKALIKE_GROUPS)
            line = " ".join("".join(rng.choice(group) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(5, 15)))
        else:
            out = []
            for _ in range(rng.randint(4, 10)):
                w = rng.choice(words)
                g = rng.choice(LOOKALIKE_GROUPS)
                u = rng.random()
                if u < 0.3:
                    w = rng.choice(g) + w + rng.choice(g)
                elif u < 0.6:
                    w = w + rng.choice(g)
                out.append(w)
            line = " ".join(out)
        line = line[: pg.COLS]
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


_FENCE_LANGS = (("python", 0.6), ("py", 0.05), ("", 0.1), ("console", 0.05), ("json", 0.05), ("bash", 0.05),
                ("text", 0.05), ("diff", 0.05))


def fenced_code(corpus: Corpus, rng: random.Random, n_chars: int) -> str:
    """Markdown as an assistant writes it: a sentence, a ``` fence with a language, code lines (Python from
    the corpus; shell lines for console/bash), the closing fence, sometimes more text and another block."""
    parts, total = [], 0
    while total < n_chars:
        lang = rng.choices([l for l, _ in _FENCE_LANGS], [w for _, w in _FENCE_LANGS])[0]
        intro = corpus.sample(rng.choice(["prose", "dialogue"]), rng, rng.randint(20, 160)).split("\n")[0]
        if lang in ("console", "bash"):
            body = "\n".join(f"{'$ ' if lang == 'console' else ''}{rng.choice(['ls', 'cd', 'git', 'pip', 'grep', 'cat', 'python'])} "
                             f"{' '.join(rng.choice(corpus.words).lower() for _ in range(rng.randint(1, 4)))}"
                             for _ in range(rng.randint(1, 6)))
        elif lang == "json":
            body = structured(rng, corpus.words, 120).split("\n\n")[0]
        else:
            body = corpus.sample("code", rng, rng.randint(80, 900))
            body = "\n".join(body.split("\n")[: rng.randint(3, 20)])
        tick = rng.choice(["```", "```", "```", "~~~"])
        block = f"{intro}\n{tick}{lang}\n{body}\n{tick}"
        parts.append(block)
        total += len(block) + 1
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------
# conversation pages: what Memory pages out (render_turns, dense layout)

_ROLES = (("user", 0.4), ("assistant", 0.4), ("system", 0.04), ("tool", 0.06), ("Caroline", 0.03), ("Melanie", 0.03),
          ("agent_2", 0.04))
_TURN_KINDS = (("dialogue", 0.25), ("prose", 0.12), ("fenced_code", 0.12), ("structured", 0.06), ("random_words", 0.05),
               ("symbols", 0.04), ("emoji", 0.06), ("lookalikes", 0.03), ("list", 0.05), ("script", 0.22))


def _list_text(corpus: Corpus, rng: random.Random) -> str:
    mark = rng.choice(["- ", "* ", "1. ", "• "])
    items = []
    for i in range(rng.randint(2, 6)):
        m = f"{i + 1}. " if mark == "1. " else mark
        items.append(m + corpus.sample(rng.choice(["prose", "dialogue"]), rng, rng.randint(10, 90)).split("\n")[0])
    return rng.choice(["Here are the steps:\n", "", "Options:\n"]) + "\n".join(items)


def conversation_turns(corpus: Corpus, rng: random.Random, n_chars: int) -> list[pg.Turn]:
    """Turns as an agent's memory holds them: mostly short chat, some long answers with code or lists, text in
    every script, roles user/assistant/system/tool and speaker names, with or without timestamps."""
    turns, total = [], 0
    t = rng.uniform(1.0e9, 1.9e9) if rng.random() < 0.8 else None
    have = [k for k in SCRIPT_KINDS if k in corpus.texts]
    while total < n_chars:
        role = rng.choices([r for r, _ in _ROLES], [w for _, w in _ROLES])[0]
        kind = rng.choices([k for k, _ in _TURN_KINDS], [w for _, w in _TURN_KINDS])[0]
        size = int(rng.choice([rng.randint(5, 120), rng.randint(40, 400), rng.randint(200, 1500)]))
        if kind == "list":
            text = _list_text(corpus, rng)
        elif kind == "script":
            script = rng.choice(SCRIPT_KINDS)
            src = script if (script in have and rng.random() < 0.7) else None
            text = corpus.sample(src, rng, size) if src else script_text(rng, script, size)
            text = text.strip("\n")
        else:
            text = corpus.sample(kind, rng, size).strip("\n")
        turns.append(pg.Turn(role, text, timestamp=t))
        if t is not None:
            t += rng.expovariate(1 / 300)
        total += len(text) + 30
    return turns


def conversation_page(corpus: Corpus, rng: random.Random) -> pg.Page:
    """The first page of a conversation rendered as Memory renders it."""
    turns = conversation_turns(corpus, rng, 4500)
    return pg.render_turns(turns, first_turn_number=rng.choice([1, rng.randint(1, 99), rng.randint(100, 99999)]),
                           max_pages=1)[0]


def random_chars(rng: random.Random, n_chars: int) -> str:
    lines, total = [], 0
    while total < n_chars:
        width = rng.choice([pg.COLS, pg.COLS, rng.randint(1, pg.COLS)])
        line = "".join(rng.choice(_PRINTABLE) if rng.random() > 0.15 else " " for _ in range(width))
        lines.append(line.rstrip())
        total += width + 1
    return "\n".join(lines)


_LATIN1_LETTERS = "".join(c for c in EXTRA_CHARS if c.isalpha() and ord(c) < 0x180)
_EXTRA_SIGNS = "".join(c for c in EXTRA_CHARS if not c.isalpha() and not 0x2500 <= ord(c) < 0x2580)


def symbols(rng: random.Random, words: list[str], n_chars: int) -> str:
    """Text with the glyph heads' listed non-ASCII characters (`glyphs.EXTRA_CHARS`): words with accented
    letters, typographic quotes and dashes, arrows, math and currency signs, Greek, and box-drawing tables."""
    lines, total = [], 0
    while total < n_chars:
        if rng.random() < 0.15:  # a box-drawing table
            widths = [rng.randint(3, 12) for _ in range(rng.randint(2, 4))]
            cells = lambda: "│" + "│".join(f" {rng.choice(words)[:w - 2]:<{w - 2}} " for w in widths) + "│"  # noqa: E731
            rule = lambda a, b, c: a + b.join("─" * w for w in widths) + c  # noqa: E731
            block = [rule("┌", "┬", "┐"), cells(), rule("├", "┼", "┤"), cells(), cells(), rule("└", "┴", "┘")]
            if rng.random() < 0.5:
                block = [line.translate(str.maketrans("─│┌┐└┘├┤┬┴┼", "═║╔╗╚╝╠╣╦╩╬")) for line in block]
            lines += block
            total += sum(len(line) + 1 for line in block)
            continue
        out = []
        while sum(len(t) + 1 for t in out) < rng.randint(20, pg.COLS - 8):
            u, w = rng.random(), rng.choice(words)
            if u < 0.45:
                out.append(w)
            elif u < 0.7:  # accented letters in a word
                chars = list(w)
                for _ in range(rng.randint(1, 2)):
                    chars[rng.randrange(len(chars))] = rng.choice(_LATIN1_LETTERS)
                out.append("".join(chars))
            elif u < 0.8:
                q = rng.choice(["‘’", "“”", "«»", "‹›", "„“", "‚‘"])
                out.append(q[0] + w + q[1])
            elif u < 0.9:
                out.append("".join(rng.choice(_EXTRA_SIGNS) for _ in range(rng.randint(1, 3))))
            else:
                out.append(rng.choice(["±", "≈", "≤", "≥", "€", "£", "¥", "–"]) + str(rng.randint(0, 9999))
                           + rng.choice(["", "°C", "°", "%", "µs", "²", "³", "½"]))
        line = " ".join(out)[: pg.COLS]
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def random_id(rng: random.Random) -> str:
    shape = rng.choice(["AA-9999-AA", "9999-9999", "aaaa9999", "AA99-AA99-99", "a9a9a9a9a9", "999-99-9999"])
    return "".join(
        rng.choice(string.ascii_uppercase) if ch == "A" else rng.choice(string.ascii_lowercase) if ch == "a"
        else rng.choice(string.digits) if ch == "9" else ch for ch in shape)


def random_words(rng: random.Random, words: list[str], n_chars: int) -> str:
    out, total = [], 0
    while total < n_chars:
        r = rng.random()
        w = rng.choice(words) if r < 0.8 else random_id(rng) if r < 0.9 else str(rng.randint(0, 10 ** rng.randint(1, 7)))
        if rng.random() < 0.1:
            w = w.capitalize()
        if rng.random() < 0.08:
            w += rng.choice(".,;:!?")
        out.append(w)
        total += len(w) + 1
        if rng.random() < 0.03:
            out.append("\n")
    return " ".join(out).replace(" \n ", "\n")


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _url(rng: random.Random, words: list[str]) -> str:
    return f"https://{rng.choice(words).lower()}.{rng.choice(['com', 'org', 'io', 'net', 'dev'])}/{rng.choice(words).lower()}/{rng.randint(1, 99999)}"


def structured(rng: random.Random, words: list[str], n_chars: int) -> str:
    parts, total = [], 0
    while total < n_chars:
        form = rng.randrange(5)
        if form == 0:  # JSON record
            obj = {rng.choice(words).lower(): rng.choice([random_id(rng), rng.randint(-9999, 99999),
                   round(rng.uniform(-1000, 1000), rng.randint(1, 4)), _date(rng), _url(rng, words), rng.choice(words)])
                   for _ in range(rng.randint(2, 7))}
            text = json.dumps(obj, indent=rng.choice([None, 2, 4]))
        elif form == 1:  # markdown table
            n_cols = rng.randint(2, 5)
            head = [rng.choice(words)[:10] for _ in range(n_cols)]
            rows = ["| " + " | ".join(head) + " |", "|" + "---|" * n_cols]
            for _ in range(rng.randint(2, 8)):
                rows.append("| " + " | ".join(rng.choice([random_id(rng), str(rng.randint(0, 99999)), _date(rng),
                            rng.choice(words)[:12]]) for _ in range(n_cols)) + " |")
            text = "\n".join(rows)
        elif form == 2:  # log lines
            text = "\n".join(f"{_date(rng)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} "
                             f"{rng.choice(['INFO', 'WARN', 'ERROR', 'DEBUG'])} {rng.choice(words)} id={random_id(rng)} "
                             f"took {rng.randint(1, 9999)}ms" for _ in range(rng.randint(2, 8)))
        elif form == 3:  # needle-like facts
            text = "\n".join(f"The {rng.choice(['access code', 'password', 'ticket', 'order number', 'locker code'])} for "
                             f"{rng.choice(words)} {rng.randint(1, 99)} is {random_id(rng)}." for _ in range(rng.randint(1, 4)))
        else:  # key: value block
            text = "\n".join(f"{rng.choice(words).lower()}: {rng.choice([random_id(rng), _date(rng), _url(rng, words), str(rng.randint(0, 10**6))])}"
                             for _ in range(rng.randint(2, 8)))
        parts.append(text)
        total += len(text) + 2
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------------------------------------
# page samples

@dataclass(frozen=True)
class Stage:
    """What pages a curriculum stage shows: text mix, how many rows are kept, and at which tiers."""
    name: str
    max_rows: int                       # rows kept on the page (1..ROWS); rows below are blanked
    min_rows: int = 1
    tiers: tuple[str, ...] = ("base",)
    # Move the kept rows down by a random multiple of 5 rows (= 128 px, so cells stay on the same grid of
    # visual tokens): every page position is trained from the first step, not only the top rows.
    anywhere: bool = True
    mix: tuple[tuple[str, float], ...] = (("random_chars", 0.3), ("random_words", 0.15), ("structured", 0.15),
                                          ("prose", 0.15), ("dialogue", 0.1), ("code", 0.15), ("symbols", 0.05))
    # A stage that trains the gist tier on pages of its own: `gist_share` of the render rounds draw their pages
    # from `gist_mix` and read them at gist and one other tier; the other rounds never read gist. (36 tokens
    # cannot hold a page of CJK; the gist target is Latin-script text.)
    gist_mix: tuple[tuple[str, float], ...] | None = None
    gist_share: float = 0.0


def make_page(corpus: Corpus, stage: Stage, rng: random.Random, kind: str | None = None):
    """Render one training page. Returns (page, n_rows kept, kind)."""
    if kind is None:
        kinds, weights = zip(*stage.mix)
        kind = rng.choices(kinds, weights)[0]
    n_rows = rng.randint(stage.min_rows, stage.max_rows)
    if kind == "chat":
        page = conversation_page(corpus, rng)
    else:
        text = corpus.sample(kind, rng, n_chars=min(3200, n_rows * pg.COLS + 200))
        page = pg.render_plain_page(text)
    if n_rows < pg.ROWS:
        shift = 5 * rng.randint(0, (pg.ROWS - n_rows) // 5) if stage.anywhere else 0
        page = crop_rows(page, n_rows, shift)
    return page, n_rows, kind


SHIFT_UNIT = 5  # rows; 5 * CELL_H = 128 px = 2 visual tokens at 1024 px, so the slot geometry is unchanged


def crop_rows(page: pg.Page, n_rows: int, shift: int = 0) -> CroppedPage:
    """Keep the first `n_rows` rows of a plain page, blank the rest, and move them down `shift` rows."""
    from PIL import Image

    if shift % SHIFT_UNIT or shift < 0 or shift + n_rows > pg.ROWS:
        raise ValueError(f"shift must be a multiple of {SHIFT_UNIT} rows keeping {n_rows} rows on the page, got {shift}")
    top = round(pg.MARGIN_Y + n_rows * pg.CELL_H)
    dy = round(shift * pg.CELL_H)
    image = Image.new("L", page.image.size, 255)
    image.paste(page.image.crop((0, 0, pg.PAGE_SIZE, top)), (0, dy))
    return CroppedPage(page, image, n_rows, shift)


class CroppedPage:
    """A plain page with only `n_rows` rows kept (moved down by `shift` rows): what the training code reads.

    Its text is the kept rows alone (the blank rows above them are not part of the reading target)."""

    def __init__(self, page: pg.Page, image, n_rows: int, shift: int = 0):
        self.image = image
        self.lines = tuple(page.lines[:n_rows])
        codes = np.zeros_like(page.cell_codes())
        codes[shift:shift + n_rows] = page.cell_codes()[:n_rows]
        self._codes = codes

    @property
    def text(self) -> str:
        lines = list(self.lines)
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)

    def cell_codes(self) -> np.ndarray:
        return self._codes


def page_pixels(page, tier: str, rng: random.Random | None = None, stored: float = 0.0) -> np.ndarray:
    """uint8 (S, S) grayscale pixels of the page at a tier, through the renderer's one resampling function.

    With probability `stored` (needs `rng`), the page as Memory keeps it instead: written at base as a
    16-grey PNG, then, for a lower tier, faded through a random subset of the tiers between (each stored and
    read back), as consolidation does. Fading step by step blurs more than one resampling (gist pages read
    ~4 points worse through the views; benchmarks/storage.py), so training sees both forms."""
    if rng is None or stored <= 0 or rng.random() >= stored or tier == "large":
        return np.asarray(pg.page_at_tier(page.image, tier), dtype=np.uint8)
    from ocr_model.page.codec import as_stored

    order = list(pg.TIERS)  # sharpest first: the order consolidation fades a page through
    im = as_stored(page.image, "base")
    for t in order[order.index("base") + 1: order.index(tier) + 1]:
        if t == tier or rng.random() < 0.5:  # intermediate tiers: consolidation may or may not stop there
            im = as_stored(im, t)
    return np.asarray(im, dtype=np.uint8)


def _cli() -> None:
    ap = argparse.ArgumentParser(prog="python -m ocr_model.data", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="collect the text corpus from installed packages")
    b.add_argument("--out", default="corpus", help="output directory (default: corpus/)")
    t = sub.add_parser("tokenizer", help="train the byte-level BPE tokenizer on corpus + synthetic text")
    t.add_argument("--corpus", default="corpus", help="corpus directory")
    t.add_argument("--vocab", type=int, default=4096, help="vocabulary size including special tokens")
    t.add_argument("--out", required=True, help="where tokenizer.json goes")
    t.add_argument("--pages", type=int, default=6000, help="page-sized samples per text kind")
    p = sub.add_parser("preview", help="render sample training pages to PNG")
    p.add_argument("--corpus", default="corpus", help="corpus directory")
    p.add_argument("--out", default="preview", help="where the PNGs go")
    p.add_argument("--n", type=int, default=6, help="pages per kind")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    args = ap.parse_args()
    if args.cmd == "build":
        print(json.dumps(build_corpus(args.out), indent=1))
    elif args.cmd == "tokenizer":
        from ocr_model.tokenizer import train_tokenizer

        corpus, rng = Corpus(args.corpus, "train"), random.Random(0)
        texts = [corpus.sample(kind, rng) for kind in KINDS for _ in range(args.pages)]
        tok = train_tokenizer(texts, args.vocab)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tok.save(args.out)
        sample = texts[:: max(1, len(texts) // 600)]
        n_chars = sum(len(t) for t in sample)
        n_tok = sum(len(tok.encode(t)) for t in sample)
        print(json.dumps({"vocab": args.vocab, "chars_per_token": round(n_chars / n_tok, 3), "out": args.out}))
    else:
        corpus = Corpus(args.corpus, "heldout")
        rng = random.Random(args.seed)
        os.makedirs(args.out, exist_ok=True)
        for kind in KINDS:
            for n in range(args.n):
                page, _, _ = make_page(corpus, Stage("full", pg.ROWS, pg.ROWS), rng, kind)
                page.image.save(os.path.join(args.out, f"{kind}_{n}.png"))
        print(f"wrote {len(KINDS) * args.n} pages to {args.out}")


if __name__ == "__main__":
    _cli()
