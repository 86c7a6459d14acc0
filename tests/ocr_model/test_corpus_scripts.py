"""Cleaning functions of ocr_model.corpus_scripts on inline strings (no Debian package needed)."""
from __future__ import annotations

import unicodedata

import pytest

from ocr_model import corpus_scripts as cs


def test_strip_roff_snippet():
    src = ('.\\" a comment\n.TH LS 1 "2023" "GNU" "Benutzerbefehle"\n.SH BESCHREIBUNG\n'
           'Listet Informationen \\fBüber\\fR Dateien auf.\n.PP\n\\-a, \\-\\-all\n.B fett\n')
    out = cs.clean_text(src, "roff")
    assert "comment" not in out and ".TH" not in out and "\\f" not in out
    assert "BESCHREIBUNG" in out and "Listet Informationen über Dateien auf." in out
    assert "-a, --all" in out and "fett" in out


def test_strip_html_snippet():
    src = ("<html><head><title>t</title><style>p{}</style></head><body><h1>Überschrift</h1>"
           "<p>Ein <b>kurzer</b>\n Absatz &amp; mehr.</p><script>x=1</script><pre>a  b\n  c</pre>"
           "<table><tr><td>x</td><td>y</td></tr></table></body></html>")
    out = cs.clean_text(src, "html")
    assert "<" not in out and "x=1" not in out and "p{}" not in out
    assert "Überschrift\n\nEin kurzer Absatz & mehr." in out
    assert "a  b\n  c" in out  # <pre> kept verbatim


def test_nfc_and_controls():
    decomposed = "Cafe\u0301 Đa\u0300 Nẵng\x07\x1e\x00 ok\r\nnext\tcol\x1b[31mred\x1b[m b\x08bold"
    out = cs.tidy(decomposed)
    assert out == unicodedata.normalize("NFC", out)
    assert "Café" in out and "Đà" in out
    assert out == "Café Đà Nẵng ok\nnext\tcolred bold"
    assert all(c in "\n\t" or ord(c) >= 0x20 for c in out)


def test_markup_lines_and_paragraphs():
    out = cs.tidy("+------+----+\n|  a   | b  |\nText eins\n\n\n\nText zwei\n----\n")
    assert out == "|  a   | b  |\nText eins\n\nText zwei"


def test_cut_and_script_check():
    text = "\n\n".join(["слово " * 50] * 20)
    pieces = cs.cut(text, 1000)
    assert all(len(p) <= 1000 for p in pieces) and len(pieces) > 5
    assert cs.script_ok("cyrillic", "ru", text)
    assert not cs.script_ok("cyrillic", "ru", "the word and " * 100)
    assert not cs.script_ok("latin", "de", "this is the English text of the page and " * 30)


@pytest.mark.parametrize("path", ["/usr/share/locale/de/LC_MESSAGES/coreutils.mo", "/tmp/x.po", "/a/LC_MESSAGES/b"])
def test_forbidden_paths(path):
    with pytest.raises(AssertionError):
        cs._check_path(path)
