"""Verified page-out: every archived turn reads back exactly (through a lossless drawing where needed), or
stays verbatim; the store knows which; per-turn confidences come from the turn's own cells."""
from __future__ import annotations

import numpy as np
import pytest

from ocr_model.page import COLS, ROWS, Turn
from optimem.pageout import char_precision
from optimem.reader import Reading


class Lossy:
    """The oracle reader, then a transformation of what it read (a reader with blind spots)."""

    def __init__(self, oracle, transform, cells=None):
        self.oracle, self.transform, self.cells, self.name = oracle, transform, cells, "lossy"

    def read(self, images, tier):
        out = []
        for r in self.oracle.read(images, tier):
            cells = self.cells(r.text) if self.cells else None
            out.append(Reading(self.transform(r.text), r.confidence, True, r.n_tokens, method="grid", cells=cells))
        return out

    def count_tokens(self, text):
        return self.oracle.count_tokens(text)


def ascii_only(text: str) -> str:
    return "".join(c if c == "\n" or " " <= c <= "~" else "?" for c in text)


TEXTS = [
    "Die Größe der Wohnung: 85 m². Grüße, Łukasz Wiśniewski",
    "Привет! Как дела? Γειά σου κόσμε.",
    "中文和日本語のテキスト、한국어도 있습니다",
    "emoji 😀👍 and ❤️ with a variation selector",
    "```python\ndef f(x):\n\treturn x  # tab-indented\n```",
    "control \x00 and zero width \u200b and trailing   \nspaces\r\nand CRLF",
    "back\\slash \\u{41} looks like an escape",
    "plain English stays plain.",
]


def test_every_turn_reads_back_exactly_through_a_perfect_reader(make_memory, conversation):
    m = make_memory(working_tokens=300)
    conv = conversation(20)
    ids = m.add_many(conv)
    archived = [i for i in ids if m.get(i).tier != "verbatim"]
    assert archived
    for i in archived:
        r = m.get(i)
        assert r.verified is True and r.verified_precision == 1.0 and r.verified_tier == "base"
        assert r.text == conv[ids.index(i)]["content"]
    assert m.stats().exact_share == {"base": 1.0}
    assert all(r.verified is None for r in m.recent())  # verbatim turns were never paged out


def test_turns_a_reader_cannot_spell_are_archived_escaped_and_come_back_exact(make_memory, oracle, conversation):
    m = make_memory(working_tokens=200, model=Lossy(oracle, ascii_only), keep_recent=0)
    filler = conversation(12)
    turns = [{"role": "user", "content": t} for t in TEXTS]
    ids = m.add_many(turns + filler)
    checked = 0
    for i, t in zip(ids, TEXTS):
        r = m.get(i)
        if r.tier == "verbatim":
            continue
        checked += 1
        assert r.text == t, (t, r.text)  # exact, through the escaped drawing
        assert r.verified is True
    assert checked >= 6
    forms = {c[4] for p in m._archive.pages() for c in __import__("json").loads(p.layout)["checks"].values()}
    assert "plain" in forms and ({"escaped", "ascii"} & forms)


def test_a_turn_no_drawing_reads_back_stays_verbatim_and_is_counted(make_memory, oracle, conversation):
    def garble(text):  # loses every 'q' and every backslash: escaping a q cannot save it either
        return text.replace("q", "").replace("\\", "")

    m = make_memory(working_tokens=200, model=Lossy(oracle, garble), keep_recent=0)
    conv = conversation(12)
    conv[1]["content"] += " quiet quality"
    ids = m.add_many(conv)
    r = m.get(ids[1])
    assert r.tier == "verbatim" and r.text == conv[1]["content"]
    assert m.stats().unarchivable == 1
    assert any(m.get(i).tier != "verbatim" for i in ids[2:8])  # the others were archived


def test_without_verification_nothing_is_read_at_page_out(make_memory, oracle, conversation):
    m = make_memory(working_tokens=300, verify=False)
    ids = m.add_many(conversation(20))
    assert oracle.reads == 0 and m.stats().turns_archived > 0
    archived = [m.get(i, decode=False) for i in ids if m.get(i, decode=False).tier != "verbatim"]
    # nothing was measured, so nothing is claimed: no verified flag, no precision, no exact share
    assert archived and all(r.verified is None and r.verified_precision is None for r in archived)
    assert m.stats().exact_share == {}


def test_the_newest_turns_stay_verbatim_after_a_huge_turn(make_memory, conversation):
    m = make_memory(working_tokens=400, keep_recent=4)
    conv = conversation(6)
    m.add_many(conv[:5])
    big = "word " * 20_000  # ~25,000 tokens in this reader's count
    m.add({"role": "user", "content": big})
    recent = m.recent()
    assert [r.text for r in recent][-1] == big
    assert len(recent) >= 4  # keep_recent=4: the huge turn did not push everything out
    assert m.context(2000) != ""


def test_turn_confidence_is_computed_over_the_turn_own_cells(make_memory, oracle, conversation):
    from ocr_model.page import split_decoded  # noqa: F401 (the layout tells which cells are whose)

    def cells(text):
        c = np.full((ROWS, COLS), 0.99, np.float32)
        lines = text.split("\n")[:ROWS]
        on = False
        for r, line in enumerate(lines):
            on = on or "marker3x" in line
            if on:
                c[r] = 0.2  # the reader is unsure of the rows that hold turn 3
            if "marker4x" in line:
                on = False
        return c

    m = make_memory(working_tokens=300, model=Lossy(oracle, lambda t: t, cells))
    ids = m.add_many(conversation(20))
    r3, r8 = m.get(ids[3]), m.get(ids[8])
    assert r3.tier != "verbatim" and r8.tier != "verbatim"
    assert r3.confidence < 0.6 < 0.95 < r8.confidence


def test_char_precision():
    assert char_precision("abc", "abc") == 1.0
    assert char_precision("abcd", "abxd") == 0.75
    assert char_precision("", "") == 1.0 and char_precision("", "x") == 0.0
    assert char_precision("ab", "xxxxxx") == 0.0


@pytest.mark.parametrize("text", TEXTS)
def test_pageout_module_alone(text, oracle):
    from optimem.pageout import draw_verified
    import optimem.memory as memory_module

    reader = Lossy(oracle, ascii_only)
    turns = [Turn("user", text, id=1), Turn("assistant", "ok", id=2)]
    d = draw_verified(turns, reader, first_turn_number=1, tier="base", levels=16, render=memory_module.render_turns)
    assert d.verbatim == [] and d.checks[1].exact and d.checks[2].exact
    assert d.reads >= len(d.pages)


def test_a_redraw_reads_only_the_pages_it_changed(oracle):
    """Three pages of plain turns, one misread turn on the last: the fallback round redraws it, and only
    the page(s) whose image changed are read again (the first pages read once)."""
    from optimem.pageout import draw_verified
    import optimem.memory as memory_module

    turns = [Turn("user" if i % 2 == 0 else "assistant", f"turn {i} " + "words of plain text " * 12, id=i + 1)
             for i in range(40)]
    turns[-1] = Turn("assistant", "the last one says ZEBRA", id=40)  # plain ASCII the reader misreads

    class Counting(Lossy):
        pages_read = 0

        def read(self, images, tier):
            Counting.pages_read += len(images)
            return super().read(images, tier)

    reader = Counting(oracle, lambda t: t.replace("Z", "2"))
    d = draw_verified(turns, reader, first_turn_number=1, tier="base", levels=16, render=memory_module.render_turns)
    assert len(d.pages) >= 3 and d.checks[40].exact and d.checks[40].form == "escaped"
    assert d.reads == Counting.pages_read <= len(d.pages) + 1  # one more read: the last page, redrawn
