"""The lossless drawing of a turn: characters a reader cannot spell are drawn as ASCII escapes.

A turn is first drawn as it is. When reading it back does not give its text exactly (verified page-out,
optimem.memory), it is drawn again in escaped form, which a reader of plain ASCII reads back exactly:

    '\\'                               -> '\\\\'
    a character of `chars`, a control  -> '\\u{HEX}' (upper-case hex code point, 1-6 digits)
      or format character, tab, '\\r',
      a character no font draws, and
      a space or tab at the end of a line
    a fence (``` or ~~~) opening a line -> '\\`' + the rest ('\\~'): the code is drawn plain, unhighlighted

`unescape(escape(t, chars)) == t` for every str t and every set of characters (property-tested over
arbitrary Unicode), and an escaped text is drawn without loss: no tabs, no line breaks other than '\\n',
no trailing spaces on a line, nothing drawn as a replacement box or as an escape of the renderer's own.
`unescape` leaves anything that is not a well-formed escape as it is, so a misread escape shows up as a
mismatch, never as another character.
"""
from __future__ import annotations

import re
import unicodedata

from . import fonts

__all__ = ["escape", "unescape", "needs_escape"]

_UNESCAPE = re.compile(r"\\(?:(\\)|u\{([0-9A-F]{1,6})\}|([`~]))")
_FENCE = re.compile(r"^( {0,3})(`{3}|~{3})", re.M)


def needs_escape(ch: str) -> bool:
    """True for a character the renderer cannot draw as itself, one for one (escaped always)."""
    if ch == "\n":
        return False
    if ch in "\t\r" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
        return True
    kind = fonts.classify(ch)[2]
    return kind in (fonts.BOX, fonts.ESCAPE)


def escape(text: str, chars: set[str] | frozenset[str] = frozenset()) -> str:
    """`text` with '\\' doubled, `chars` and every character in needs_escape as '\\u{HEX}', spaces and tabs
    at line ends escaped, and line-opening fences broken (see the module doc)."""
    out = []
    n = len(text)
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in chars or needs_escape(ch):
            out.append(f"\\u{{{ord(ch):X}}}")
        elif ch == " " and (i + 1 == n or text[i + 1] in "\n\r" or _only_blanks_to_eol(text, i + 1)):
            out.append("\\u{20}")
        else:
            out.append(ch)
    return _FENCE.sub(lambda m: m.group(1) + "\\" + m.group(2), "".join(out))


def _only_blanks_to_eol(text: str, j: int) -> bool:
    while j < len(text) and text[j] in " \t":
        j += 1
    return j == len(text) or text[j] in "\n\r"


def unescape(text: str) -> str:
    """Undo `escape`: '\\\\' -> '\\', '\\u{HEX}' -> the character, '\\`' / '\\~' -> '`' / '~'."""
    def sub(m: re.Match) -> str:
        if m.group(1):
            return "\\"
        if m.group(2):
            cp = int(m.group(2), 16)
            return chr(cp) if cp <= 0x10FFFF else m.group(0)
        return m.group(3)

    return _UNESCAPE.sub(sub, text)
