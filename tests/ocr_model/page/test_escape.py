"""The lossless drawing: escape/unescape round trip, and an escaped turn drawn and perfectly read is exact."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ocr_model.page import Turn, render_turns, split_decoded
from ocr_model.page.escape import escape, unescape


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sets(st.characters()))
def test_unescape_inverts_escape_for_any_text(text, chars):
    assert unescape(escape(text, chars)) == text


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400), st.text(max_size=60))
def test_an_escaped_turn_drawn_and_read_perfectly_is_exact(text, other):
    # every character that is not printable ASCII is escaped: what a reader of ASCII pages reads back
    chars = {c for c in text if not (" " <= c <= "~")}
    turns = [Turn("user", other), Turn("assistant", escape(text, chars), id=7), Turn("user", other)]
    pages = render_turns(turns)
    got = "".join(split_decoded(p.text, p.layout).get(7, "") for p in pages)
    assert unescape(got) == text


def test_examples():
    assert escape("a\\b") == "a\\\\b"
    assert escape("tab\there  \nx") == "tab\\u{9}here\\u{20}\\u{20}\nx"
    assert escape("```python\nx\n```") == "\\```python\nx\n\\```"
    assert escape("Größe", {"ö", "ß"}) == "Gr\\u{F6}\\u{DF}e"
    assert unescape("\\u{110000} \\q \\u{zz}") == "\\u{110000} \\q \\u{zz}"   # not escapes: left as they are
