"""Glyph classes: the name of what is drawn in each page cell, and which visual token owns which cell.

Every character a shipped font draws (ocr_model.page.fonts) has a class of its own, so a reader that names
each cell's class spells the page exactly. The table is append-only, so heads trained on a prefix of it
read as before (and train on, widened):

    0          blank cell (nothing drawn, or a space)
    1..94      printable ASCII '!'..'~'
    95         OTHER: a replacement box (a character no font draws), read as U+FFFD
    96..284    EXTRA_CHARS: the first non-ASCII classes (run s3's heads end here)
    285        WIDE_RIGHT: the right half of a two-cell character (read as nothing)
    286..      every other drawable character, by code point: Latin, Greek, Cyrillic, ..., CJK, kana, Hangul,
               emoji (N_CLASSES in all)

Token geometry: for a g x g token grid (g = tier side / 64) each token covers a square of 1024/g page pixels
and owns the cells whose centres lie in it; `slot_table(g)` numbers them. No torch here: the heads that
predict these classes are ocr_model.glyphs.
"""
from __future__ import annotations

from functools import cache, lru_cache

import numpy as np

from . import fonts
from .geometry import CELL_H, CELL_W, COLS, MARGIN_X, MARGIN_Y, PAGE_SIZE, ROWS

__all__ = ["EXTRA_CHARS", "ASCII_CLASSES", "OTHER", "WIDE_RIGHT", "S3_CLASSES", "classes", "n_classes",
           "glyph_classes", "slot_table", "cell_slots", "cells_text", "cells_texts", "homoglyph_groups",
           "group_of_classes", "resolve_homoglyphs", "spell_pages", "find_homoglyph_groups"]

EXTRA_CHARS = (
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿŒœŠšŽžŸ"
    "¡¿«»°±×÷§¶©®™€£¥¢µ·¬¦¤¨¯´¸¹²³¼½¾ªº"
    "‘’‚“”„–—…•†‡‰′″‹›"
    "←↑→↓↔⇐⇒⇔"
    "─│┌┐└┘├┤┬┴┼═║╔╗╚╝╠╣╦╩╬"
    "≤≥≠≈∞√∑∫∂∆∇∈∧∨≡"
    "αβγδελμπσφωΔΣΩ"
    "✓✗★☆■□▪●○◆"
)
ASCII_CLASSES = 96     # blank + 94 printable ASCII + OTHER: the classes of the first heads (run s2)
OTHER = 95
S3_CLASSES = ASCII_CLASSES + len(EXTRA_CHARS)   # 285: the classes of run s3's heads
WIDE_RIGHT = S3_CLASSES


@cache
def classes() -> tuple[str, ...]:
    """The character of every class ('' for WIDE_RIGHT, ' ' for blank, U+FFFD for OTHER)."""
    head = [" "] + [chr(33 + i) for i in range(94)] + ["\ufffd"] + list(EXTRA_CHARS) + [""]
    known = set(head)
    regular, bold, cjk, emoji = fonts.covered()
    rest = sorted(cp for cp in regular | bold | cjk | emoji if chr(cp) not in known and fonts.drawable(cp))
    return tuple(head + [chr(cp) for cp in rest])


def n_classes() -> int:
    return len(classes())


@cache
def _lookup() -> np.ndarray:
    table = classes()
    top = max(ord(c) for c in table if c) + 1
    lut = np.full(top, OTHER, dtype=np.int64)   # code point -> class
    for i, ch in enumerate(table):
        if ch and i != OTHER:
            lut[ord(ch)] = i
    lut[0] = 0
    return lut


def glyph_classes(codes: np.ndarray) -> np.ndarray:
    """Map `Page.cell_codes()` (code points, 0 empty, -1 right half of a wide char) to glyph classes."""
    codes = np.asarray(codes)
    lut = _lookup()
    inside = (codes >= 0) & (codes < len(lut))
    out = np.where(inside, lut[np.clip(codes, 0, len(lut) - 1)], OTHER)
    return np.where(codes == -1, WIDE_RIGHT, out).astype(np.int64)


@cache
def slot_table(grid: int) -> np.ndarray:
    """For a g x g token grid: flat cell index (r * COLS + c) for each (token row, token col, slot), -1 if none.

    Shape (g, g, S) with S = max rows per token * max cols per token.
    """
    span = PAGE_SIZE / grid  # page pixels covered by one visual token
    col_centre = [MARGIN_X + (c + 0.5) * CELL_W for c in range(COLS)]
    row_centre = [MARGIN_Y + (r + 0.5) * CELL_H for r in range(ROWS)]
    cols_of = [[c for c, x in enumerate(col_centre) if j * span <= x < (j + 1) * span] for j in range(grid)]
    rows_of = [[r for r, y in enumerate(row_centre) if i * span <= y < (i + 1) * span] for i in range(grid)]
    n_cols = max(len(cs) for cs in cols_of)
    n_rows = max(len(rs) for rs in rows_of)
    table = np.full((grid, grid, n_rows * n_cols), -1, dtype=np.int64)
    for i, rs in enumerate(rows_of):
        for j, cs in enumerate(cols_of):
            for a, r in enumerate(rs):
                for b, c in enumerate(cs):
                    table[i, j, a * n_cols + b] = r * COLS + c
    return table


@cache
def cell_slots(grid: int) -> np.ndarray:
    """int64 (ROWS * COLS,): the flat index (into the g * g * S slots of `slot_table(grid)`) of the one slot
    that owns each page cell."""
    table = slot_table(grid).reshape(-1)
    out = np.zeros(ROWS * COLS, dtype=np.int64)
    owned = np.nonzero(table >= 0)[0]
    out[table[owned]] = owned
    return out


@cache
def _code_points(n: int) -> np.ndarray:
    """uint32 (n,): each class's code point; 0 for WIDE_RIGHT (it spells nothing: cells_text drops it)."""
    return np.array([ord(ch) if ch else 0 for ch in classes()[:n]], dtype=np.uint32)


def cells_text(cells: np.ndarray) -> str:
    """(ROWS, COLS) glyph classes -> the page text as `Page.text` defines it (OTHER -> U+FFFD, WIDE_RIGHT -> ''):
    each row right-stripped of ' ', rows joined by newlines, trailing empty rows dropped. The rows are spelled
    in one pass (code points -> UTF-32, with a newline column), then cleaned with str methods (a page at a
    time; `cells_texts` spells a batch faster)."""
    cells = np.asarray(cells)
    cps = np.zeros((cells.shape[0], cells.shape[1] + 1), dtype="<u4")  # (ROWS, COLS + 1): the last column '\n'
    cps[:, :-1] = _code_points(n_classes())[cells]
    cps[:, -1] = 10
    spelled = cps.tobytes().decode("utf-32-le").replace("\0", "")  # no class spells '\n' or NUL
    return "\n".join(r.rstrip(" ") for r in spelled.split("\n")[:-1]).rstrip("\n")


def cells_texts(cells: np.ndarray) -> list[str]:
    """(B, ROWS, COLS) glyph classes -> each page's `cells_text`, in one pass for the batch: the code points
    (UTF-32) of the cells up to each row's last one that spells something other than ' ', less those that
    spell nothing (WIDE_RIGHT), a newline after each row and U+0001 after each page (no class spells a
    control character), decoded at once, split into pages, trailing newlines stripped."""
    cells = np.asarray(cells)
    B, R, C = cells.shape
    cps = np.empty((B, R, C + 1), dtype="<u4")  # (B, ROWS, COLS + 1): the last column '\n', or U+0001 at a page's end
    row = cps[:, :, :-1]
    row[...] = _code_points(n_classes())[cells]
    ink = (row | 32) != 32  # (B, R, C) cells that spell something other than ' ' (or nothing: 0)
    end = np.where(ink.any(-1), C - ink[:, :, ::-1].argmax(-1), 0)  # (B, R) one past each row's last ink
    keep = np.ones(cps.shape, dtype=bool)
    keep[:, :, :-1] = (np.arange(C) < end[:, :, None]) & (row != 0)
    cps[:, :, -1] = 10
    cps[:, -1, -1] = 1
    return [page.rstrip("\n") for page in cps[keep].tobytes().decode("utf-32-le").split("\x01")[:-1]]


# ---------------------------------------------------------------------------------------------------------
# homoglyphs: classes whose glyphs are drawn with exactly the same pixels (Latin 'a' and Cyrillic 'а', ','
# and U+201A, '-' and U+2011, ...). No reader can tell them apart by the cell alone; the word around them
# can. `HOMOGLYPHS_FILE` holds the groups found by drawing every class (`find_homoglyph_groups`; a test
# checks the file against the fonts); `resolve_homoglyphs` picks each cell's member from its word's script,
# and for words of shared shapes only from how the training text spells them (`LEXICON_FILE`).

HOMOGLYPHS_FILE = fonts.FONT_DIR.parent / "homoglyphs.json"
_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC", "ARMENIAN")


def find_homoglyph_groups() -> list[str]:
    """Groups (as strings, sorted by code point) of classes drawn identically."""
    import hashlib
    import unicodedata

    by_tile: dict[str, list[str]] = {}
    for i, ch in enumerate(classes()):
        if i == 0 or i == OTHER or not ch:
            continue
        width = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        tile = fonts._draw_tile(ch, fonts.TEXT, width, fonts.classify(ch)[2])
        by_tile.setdefault(hashlib.sha1(tile.tobytes()).hexdigest(), []).append(ch)
    return sorted("".join(sorted(g)) for g in by_tile.values() if len(g) > 1)


@cache
def homoglyph_groups() -> tuple[str, ...]:
    import json

    return tuple(json.loads(HOMOGLYPHS_FILE.read_text(encoding="utf-8")))


# tied words ('HOME', 'ОК', a lone 'у'): which spelling text actually uses, counted on the training corpus by
# ocr_model.build_lexicon. {context ('CYRILLIC LATIN': the page's script, the row's: _lexicon_context):
# {what the rules spell: [the spelling most often drawn, times it is, times the rules' spelling is, times
# the rules give that spelling]}}; an entry is used where its spelling is drawn at least LEXICON_MIN_GAIN
# times more than the rules' and is LEXICON_MIN_SHARE of them (the thresholds that did best on pages of the
# last fifth of the training files with a lexicon of the first four fifths)
LEXICON_FILE = HOMOGLYPHS_FILE.parent / "homoglyph_lexicon.json"
LEXICON_MIN_GAIN = 1
LEXICON_MIN_SHARE = 0.5
# sightings an entry needs, by page script (1 where not named): on a Latin page one sighting is not enough
# to respell a Latin word ('cy' was once 'су' in a Latin row of the training text)
LEXICON_MIN_COUNT = {"LATIN": 2}


@cache
def homoglyph_lexicon() -> dict[str, dict[str, str]]:
    """{context: {a tied word as the rules spell it: the spelling to write instead}} (empty without the file)."""
    import json

    if not LEXICON_FILE.exists():
        return {}
    stored = json.loads(LEXICON_FILE.read_text(encoding="utf-8"))["pages"]
    return {context: {old: new for old, (new, n_new, n_old, n) in words.items()
                   if n_new - n_old >= LEXICON_MIN_GAIN and n_new >= LEXICON_MIN_SHARE * n
                   and n_new >= LEXICON_MIN_COUNT.get(context.split(" ")[0], 1)}
            for context, words in stored.items()}


def _lexicon_context(page: str, scripts: list) -> str:
    """The lexicon's context of a row's words: the page's script and the row's (the script most of the row's
    words that have one are written in; the page's if none or a tie with it)."""
    tally: dict[str, int] = {}
    for own, _ in scripts:
        if own:
            tally[own] = tally.get(own, 0) + 1
    row = max(tally, key=lambda sc: (tally[sc], sc == page)) if tally else page
    return f"{page} {row}"


@cache
def _class_index() -> dict[str, int]:
    return {ch: i for i, ch in enumerate(classes()) if ch and i != OTHER}


@cache
def _group_tables() -> tuple[np.ndarray, dict[int, tuple[int, ...]]]:
    """(class -> its group's canonical class, canonical class -> member classes) over all classes; a class
    outside every group is a group of its own."""
    table = classes()
    index = {ch: i for i, ch in enumerate(table) if ch}
    group_of = np.arange(len(table), dtype=np.int64)
    members: dict[int, tuple[int, ...]] = {}
    for g in homoglyph_groups():
        # canonical = the most common member (ASCII, then Latin-1, the basic Cyrillic and Greek letters, ...)
        ids = sorted((index[c] for c in g if c in index), key=lambda i: (_rarity(table[i]), i))
        if len(ids) > 1:
            for i in ids:
                group_of[i] = ids[0]
            members[ids[0]] = tuple(ids)
    return group_of, members


# where the letters of everyday text live; a look-alike outside them (Latin saltillo next to an apostrophe,
# math monospace letters, archaic Greek, the Cyrillic letters of languages other than Russian, Ukrainian,
# Belarusian, Bulgarian, Serbian and Macedonian: Kazakh 'Ү', Bashkir 'һ', the palochka) is never chosen over
# a common member, and never speaks for its word's script ('echo' is Latin: its 'h' is)
_COMMON = ((0x20, 0x7F), (0xA0, 0x180), (0x386, 0x3CF), (0x400, 0x460), (0x490, 0x492), (0x1E00, 0x1F00),
           (0x1F00, 0x2000))


def _rarity(ch: str) -> int:
    cp = ord(ch)
    for rank, (a, b) in enumerate(_COMMON):
        if a <= cp < b:
            return rank
    return len(_COMMON)


def _common(ch: str) -> bool:
    return _rarity(ch) < len(_COMMON)


def group_of_classes(n: int) -> np.ndarray:
    """int64 (n,): each of the first n classes' group (the canonical member's class index)."""
    return _group_tables()[0][:n]


@cache
def _script(ch: str) -> str | None:
    """The script of a letter (None for anything else: punctuation resolves to the canonical member)."""
    import unicodedata

    if not unicodedata.category(ch).startswith("L"):
        return None
    name = unicodedata.name(ch, "")
    return next((s for s in _SCRIPTS if name.startswith(s)), None)


# Cyrillic letters drawn like Latin ones that only some of the Cyrillic languages use ('і': Ukrainian and
# Belarusian; 'ј', 'ѕ': Serbian and Macedonian), each with the letters of distinct shape that show a page is
# written in one of those languages; on a page without any of those, the look-alike is Latin (resolve_homoglyphs)
_LANGUAGE_LETTERS = (("іІ", "їЇєЄґҐўЎ"), ("јЈѕЅ", "ђЂћЋљЉњЊџЏѓЃќЌ"))


@cache
def _language_tables() -> tuple[tuple[frozenset[int], np.ndarray], ...]:
    """Per _LANGUAGE_LETTERS entry: (the look-alikes' classes, the canonical classes whose cells are evidence:
    groups of an evidence letter with no member outside Cyrillic)."""
    table = classes()
    index = {ch: i for i, ch in enumerate(table) if ch}
    group_of, members = _group_tables()
    out = []
    for alike, evidence in _LANGUAGE_LETTERS:
        ids = []
        for ch in evidence:
            if ch in index:
                g = int(group_of[index[ch]])
                if all(_script(table[m]) == "CYRILLIC" for m in members.get(g, (g,))):
                    ids.append(g)
        out.append((frozenset(index[c] for c in alike if c in index), np.array(sorted(set(ids)), dtype=np.int64)))
    return tuple(out)


def _barred(cells: np.ndarray, rows: dict[int, tuple[list[int], list[tuple[int, int]]]]) -> frozenset[int]:
    """The language-specific look-alikes (_LANGUAGE_LETTERS) a page of canonical classes shows no evidence for:
    no letter of distinct shape of those languages, and no word of `rows` ({row: (classes, words)}) that is
    Cyrillic without them yet holds their shape ('файлі', 'моја')."""
    group_of, members = _group_tables()
    out: dict[frozenset[int], frozenset[int]] = {}  # look-alikes -> their groups' canonical classes
    for alike, evidence in _language_tables():
        if not np.isin(cells, evidence).any():
            out[alike] = frozenset(int(group_of[m]) for m in alike)
    if not out:
        return frozenset()
    barred = frozenset().union(*out)
    for ks, words in rows.values():
        for a, b in words:
            word = ks[a:b]
            if any(k in g for g in out.values() for k in word) and _script_of(word, barred)[0] == "CYRILLIC":
                for alike, g in list(out.items()):
                    if any(k in g for k in word):
                        del out[alike]
                if not out:
                    return frozenset()
                barred = frozenset().union(*out)
    return barred


@cache
def _vote(k: int, barred: frozenset[int] = frozenset()) -> frozenset[str]:
    """The scripts a cell of class k votes for: those of its shape's common letters ('a' / Cyrillic 'а':
    Latin and Cyrillic; 'Ж': Cyrillic; 'И' / the archaic Greek 'Ͷ' drawn like it: Cyrillic only - a rare
    look-alike never speaks for a word). None for a shape that is also a digit or a sign ('3' / 'З'), or no
    letter (blanks included)."""
    table = classes()
    if not table[k]:
        return frozenset()
    group = _group_tables()[1].get(k, (k,))
    if not _only_letters(group):
        return frozenset()
    return frozenset(_script(table[m]) for m in group if _common(table[m]) and m not in barred) - {None}


@cache
def _only_letters(group: tuple[int, ...]) -> bool:
    import unicodedata

    table = classes()
    return all(unicodedata.category(table[m]).startswith("L") for m in group)


# switches for measuring each rule (benchmarks)
_RULES = {"page": True, "digits": True, "options": True, "escapes": True, "lexicon": True, "shortcut": True}


@cache
def _may_be_letter(k: int) -> bool:
    """Whether a cell of class k can be part of a word: its shape is drawn by some letter ('a', '3' / 'З',
    an apostrophe / the saltillo), not only by digits, signs or blanks."""
    import unicodedata

    table = classes()
    if not table[k]:
        return False
    group = _group_tables()[1].get(k, (k,))
    return any(unicodedata.category(table[m]).startswith("L") for m in group)


@cache
def _member(k: int, script: str, barred: frozenset[int]) -> int:
    """The first common member of canonical class k's group in `script` and not barred (k itself if none)."""
    table = classes()
    group = _group_tables()[1].get(k, (k,))
    return next((m for m in group if _script(table[m]) == script and _common(table[m]) and m not in barred), k)


def _script_of(ks, barred: frozenset[int] = frozenset()) -> tuple[str | None, frozenset[str]]:
    """A word's cells -> (the script most of them vote for, or None on a tie; the scripts tied at the top)."""
    return _script_of_word(tuple(ks), barred)


@lru_cache(maxsize=1 << 16)  # words recur: the vote of each is counted once (bounded: a long-lived process)
def _script_of_word(ks: tuple[int, ...], barred: frozenset[int]) -> tuple[str | None, frozenset[str]]:
    v: dict[str, int] = {}
    for k in ks:
        for sc in _vote(k, barred):
            v[sc] = v.get(sc, 0) + 1
    if not v:
        return None, frozenset()
    top = max(v.values())
    best = frozenset(sc for sc, n in v.items() if n == top)
    return (next(iter(best)) if len(best) == 1 else None), best


def _words(ks: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of cells that may be letters ('ab3c' is one, 'ab=c' two)."""
    table = _letter_table(len(classes()))
    edges = np.diff(np.concatenate(([0], table[np.asarray(ks, dtype=np.int64)].view(np.int8), [0])))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))


@cache
def _letter_table(n: int) -> np.ndarray:
    """(n,) bool: _may_be_letter of every class."""
    return np.array([_may_be_letter(k) for k in range(n)])


def resolve_homoglyphs(cells: np.ndarray, _seen: list | None = None) -> np.ndarray:
    """(ROWS, COLS) classes whose homoglyph cells hold their group's canonical class -> the member whose
    script the word is written in (a word: a run of cells some letter draws; '-', '=', digits split). Each
    cell votes for the scripts of its shape's common letters (_vote); the script most cells vote for, if one
    leads, is the word's. A word where scripts tie ('ОК', 'KB', 'у': drawn alike in Latin and Cyrillic) takes
    its nearest neighbours' script in the row when that is among the tied ones (the two at the same distance
    disagreeing, or none in the row: the page's most common script), a one-word option after '-' ('-c')
    and a word right after a backslash ('\\xHH') Latin; the Cyrillic 'і', 'ј', 'ѕ' only on a page that shows
    a language using them (_LANGUAGE_LETTERS; else 'POSIX' would be Cyrillic); shapes that are also a
    digit or a sign ('3' / 'З') follow their word's script only if it is not Latin ('00' is not 'ØØ'); else
    the canonical member (the most common one: ASCII first). Then a word all of whose letters are shared
    shapes (tied, or tied but for a barred 'і'; not an option or an escape) is looked up, as those rules
    spelled it, in the lexicon of the training text for its context (the page's script and its row's:
    homoglyph_lexicon, _lexicon_context): where the text spells it otherwise more often ('НОМЕ' on a Cyrillic
    page is 'HOME', 'cy' in a Serbian row 'су'), that spelling is written. Only common
    letters (the basic Latin, Greek and Cyrillic blocks) are ever picked: a saltillo never replaces an
    apostrophe. `_seen` (ocr_model.build_lexicon): a list that gets (context, row, start, end, the
    rules' spelling) of each word looked up; the lexicon is then not applied."""
    _, members = _group_tables()
    if not members:
        return cells
    table = classes()
    out = np.array(cells, copy=True)
    # a row of ASCII classes only (1-94) or blanks stays as it is on a page whose most common script is Latin:
    # every one of its words has Latin among its top scripts (an ASCII letter is Latin, whatever else it is
    # drawn like), so it resolves to the ASCII member; for the page's count of scripts it counts as Latin
    others = np.nonzero((out > ASCII_CLASSES - 2).any(axis=1))[0]  # the rows with a class beyond ASCII
    if not len(others):  # ASCII rows only: the page's script is Latin, and every word resolves to its ASCII member
        return out
    # the same holds where the other classes are Latin-safe (_latin_safe: a sign no letter draws, '│', '€';
    # a letter that votes for Latin or no script and stays itself in a Latin word, 'é', '中') and those rows
    # hold no word the Latin page's lexicon respells ('TK'): then every vote is Latin's, and no cell changes
    if _RULES["shortcut"] and _latin_safe(len(table))[out].all():
        keys = tuple(homoglyph_lexicon().get("LATIN LATIN", {}))
        text = cells_text(out[others]) if keys else ""
        if not any(k in text for k in keys):
            return out
    todo: dict[int, tuple[list[int], list[tuple[int, int]]]] = {}  # row -> (its classes, its words)
    for r in others:
        ks = [int(k) for k in out[r]]
        todo[int(r)] = (ks, _words(ks))
    barred = _barred(out, todo)  # 'і' on a page with no Ukrainian letter is 'i'
    rows: dict[int, tuple[list[int], list[tuple[int, int]], list]] = {}
    plain = np.array([r not in todo for r in range(out.shape[0])])  # the ASCII rows, each Latin if it has a letter
    count: dict[str, int] = {"LATIN": int(_letterish(len(table))[out[plain]].any(axis=1).sum())}
    for r in todo:
        ks, words = todo[r]
        scripts = [_script_of(ks[a:b], barred) for a, b in words]
        rows[r] = (ks, words, scripts)
        for own, _ in scripts:
            if own:
                count[own] = count.get(own, 0) + 1
    page = max(count, key=lambda sc: (count[sc], sc == "LATIN"))  # the page's most common script
    lexicons, index = homoglyph_lexicon(), _class_index()
    if page != "LATIN":  # on a page of another script an ASCII row of tied words ('ABTOP') may be that script
        for r in range(out.shape[0]):
            if r not in rows:
                ks = [int(k) for k in out[r]]
                if any(k in members for k in ks):
                    words = _words(ks)
                    rows[r] = (ks, words, [_script_of(ks[a:b], barred) for a, b in words])
    for r, (ks, words, scripts) in rows.items():
        if not any(k in members for k in ks):
            continue
        row = out[r]
        context = _lexicon_context(page, scripts)
        lexicon = lexicons.get(context, {})
        for w, (a, b) in enumerate(words):
            if not any(ks[j] in members for j in range(a, b)):
                continue
            own, tied = scripts[w]
            # '-c', '--all': a command-line option, and '\\a', '\\xHH': an escape sequence, are Latin in any text
            latin = a > 0 and (_RULES["options"] and table[ks[a - 1]] == "-" and (a < 2 or ks[a - 2] in (0, ks[a - 1]))
                               and (b == len(ks) or not _may_be_letter(ks[b]))
                               or _RULES["escapes"] and table[ks[a - 1]] == "\\")
            want = own
            if want is None and tied:
                want = _neighbours(scripts, words, ks, w, page if _RULES["page"] else None)
                if latin and "LATIN" in tied:
                    want = "LATIN"
                if want not in tied:
                    want = None
            for j in range(a, b):
                group = members.get(ks[j])
                if group is None:
                    continue
                pick = want
                if not _only_letters(group):  # a digit or a sign: only its word's own script (not Latin) asks
                    pick = (own or (want if _RULES["digits"] else None))
                    if pick == "LATIN":
                        pick = None
                if pick:
                    row[j] = _member(ks[j], pick, barred)
            if not latin and (own is None or barred and _script_of(ks[a:b])[0] is None):  # all shared shapes
                spelled = "".join(table[k] for k in row[a:b])
                if _seen is not None:
                    _seen.append((context, r, a, b, spelled))
                elif _RULES["lexicon"] and spelled in lexicon:
                    row[a:b] = [index[ch] for ch in lexicon[spelled]]
    return out


def spell_pages(cells: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(B, ROWS, COLS) classes as the heads read them -> (a new array: each page's classes through
    `resolve_homoglyphs`, each page's text: `cells_texts` of those), in a few passes for the batch: pages of
    ASCII classes and blanks only, and pages of Latin-safe classes whose text holds no word the Latin
    lexicon respells, are found at once and stay as they are (resolve_homoglyphs' own shortcuts, its
    lexicon check made on the whole page: an ASCII row never changes on a Latin page, so a word found there
    only sends the page through the word pass, to the same result); the rest go through it page by page
    and are spelled again."""
    out = np.array(cells, copy=True)
    texts = cells_texts(out)
    _, members = _group_tables()
    todo = np.nonzero((out > ASCII_CLASSES - 2).any(axis=(1, 2)))[0] if members else []  # a class past ASCII
    if len(todo) and _RULES["shortcut"]:
        keys = tuple(homoglyph_lexicon().get("LATIN LATIN", {}))
        safe = _latin_safe(n_classes())[out[todo]].all(axis=(1, 2))  # (len(todo),)
        stays = [bool(ok) and not any(k in texts[i] for k in keys) for i, ok in zip(todo, safe)]
        todo = todo[~np.array(stays, dtype=bool)]
    for i in todo:
        out[i] = resolve_homoglyphs(out[i])
    if len(todo):
        for i, text in zip(todo, cells_texts(out[todo])):
            texts[i] = text
    return out, texts


@cache
def _latin_safe(n: int) -> np.ndarray:
    """(n,) bool: classes whose cells leave a page of ASCII rows Latin and its words unchanged (resolve_homoglyphs'
    shortcut): ASCII, blanks and OTHER; a shape no letter draws; a letter whose vote is Latin or none and
    that a Latin word keeps ('é', '中', a modifier 'ˆ' drawn like a rare look-alike). Fuzzed against the word
    pass in tests/ocr_model/page/test_homoglyphs.py."""
    return np.array([k < ASCII_CLASSES or not _may_be_letter(k)
                     or _vote(k) <= {"LATIN"} and _member(k, "LATIN", frozenset()) == k for k in range(n)])


@cache
def _letterish(n: int) -> np.ndarray:
    """(n,) bool: classes that make an ASCII row count as Latin (a homoglyph member or an ASCII letter)."""
    _, members = _group_tables()
    table = classes()
    return np.array([k in members or 0 < k < ASCII_CLASSES and table[k].isalpha() for k in range(n)])


def _neighbours(scripts: list, words: list, ks: list[int], w: int, page: str | None) -> str | None:
    """The script of word w's nearest words in its row that have one, those in its own sentence first (no
    '.', '!', '?', ';' or ':' between them); when two at the same distance disagree, or no word of the row
    has one, `page`."""
    table = classes()

    def apart(x: int) -> bool:
        lo, hi = (words[x][1], words[w][0]) if x < w else (words[w][1], words[x][0])
        return any(table[k] in ".!?;:" for k in ks[lo:hi] if k)

    for d in range(1, len(scripts)):
        near = [(apart(x), scripts[x][0]) for x in (w - d, w + d) if 0 <= x < len(scripts) and scripts[x][0]]
        if not near:
            continue
        got = {sc for sep, sc in near if not sep} or {sc for _, sc in near}
        if len(got) == 1:
            return got.pop()
        return page if page in got else sorted(got)[0]
    return page
