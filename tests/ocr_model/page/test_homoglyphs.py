"""Classes drawn with identical pixels: the stored groups match the fonts, and a perfect shape reader plus
resolve_homoglyphs spells Latin, Greek and Cyrillic words exactly."""
from __future__ import annotations

import pytest

from ocr_model.page import glyphs, render_plain_page


def test_stored_groups_are_what_the_fonts_draw():
    assert list(glyphs.homoglyph_groups()) == glyphs.find_homoglyph_groups()
    groups = glyphs.homoglyph_groups()
    assert any("a" in g and "а" in g for g in groups)  # Latin a, Cyrillic а
    assert any("," in g and "‚" in g for g in groups)  # comma, U+201A


def _read_shapes(text: str) -> str:
    """A reader that sees only shapes: every cell is its group's canonical class, then resolved."""
    page = render_plain_page(text)
    cls = glyphs.glyph_classes(page.cell_codes())
    canon = glyphs.group_of_classes(glyphs.n_classes())[cls]
    return page.text, glyphs.cells_text(glyphs.resolve_homoglyphs(canon))


@pytest.mark.parametrize("text", [
    "Привет, как дела? Всё хорошо.",
    "Καλημέρα, τι κάνεις;",
    "The price is 12,50 EUR - ok.",
    "Москва и Санкт-Петербург: 2 города",
    "PEACE and OK",
    "don't do that, it's 12'5\"",       # the apostrophe is never read as the Latin saltillo drawn like it
    "Здравствуйте, 3 раза",              # Cyrillic З in a Cyrillic word, the digit 3 alone
    "НАЗИВ",                             # И is drawn like a rare Greek letter: it still tells Cyrillic
    "ОТВЕТСТВЕННОСТИ",                   # one telling letter among fourteen drawn alike in three scripts
    "Ошибка ENOKEY в ядре",              # N is not Cyrillic: the word is not its neighbours' script
    "--input=РЕЖИМ задаёт режим",        # '=' ends a word: РЕЖИМ is not outvoted by 'input'
    "ключ -c задаёт имя",                # an option after '-' is Latin in any text
    "ЗНАК и номер",                      # a word drawn alike in three scripts, its З included, follows its row
    "pavia00@gmail.com",                 # digits in a Latin word stay digits ('0' is drawn like 'Ø')
    "I am OK. Я тоже.",                  # OK belongs to its sentence, not to the next one
    "АВТОР\nНаписано Иваном и Петром.",  # a row with no telling word takes the page's script
    "команда echo выводит строку",      # 'h' is drawn like the Bashkir 'һ', which never speaks for a word
    "ключ KEY_SPEC в ядре",              # nor does the Kazakh 'Ү' drawn like 'Y'
    "стандарт POSIX и сигнал EPIPE",     # no Ukrainian or Macedonian letter on the page: 'I', 'S' are Latin
    "Україна і світ: їжак",              # 'ї' shows Ukrainian: the 'і' among Cyrillic words is Cyrillic
    "файлі та POSIX",                    # a Cyrillic word holding the 'і' shape shows it too
    "моја кућа",                         # 'ћ' shows Serbian: 'ј' is Cyrillic
    "символы \\a и \\xHH в строке",          # a word right after a backslash is an escape: Latin
])
def test_words_take_the_script_of_their_letters(text):
    ref, got = _read_shapes(text)
    assert got == ref


def test_a_word_with_no_telling_letter_takes_its_neighbours_script():
    ref, got = _read_shapes("мы а вы")  # 'а' alone is Cyrillic because its neighbours are
    assert got == ref


def test_rows_of_ascii_only_come_back_unchanged_without_the_word_pass():
    """The shortcut that skips rows of ASCII classes gives what the word-by-word pass gives on them: the
    ASCII member (canonical) wherever a look-alike group is involved."""
    import random

    import numpy as np

    from ocr_model.page import COLS, ROWS
    from ocr_model.page import glyphs as G

    rng = random.Random(0)
    table = G.classes()
    for _ in range(20):
        text = "".join(rng.choice("aeocpxyijlsABCEHKMOPTX ,.;:'\"-|0123 ") for _ in range(COLS))
        cells = np.zeros((ROWS, COLS), dtype=np.int64)
        cells[0] = [table.index(c) if c != " " else 0 for c in text]
        cells[1] = cells[0]
        cells[1, -1] = table.index("€")  # one non-ASCII cell (no letter, no vote): the word pass runs on row 1
        cells[2, :3] = [table.index("п"), table.index("о"), 0]  # a Cyrillic row is resolved as before
        got = G.resolve_homoglyphs(cells)
        assert (got[0] == cells[0]).all() and (got[1] == cells[1]).all()
        assert G.cells_text(got[2:3]).startswith("по")


def test_the_latin_safe_shortcut_gives_what_the_word_pass_gives(monkeypatch):
    """Pages of ASCII rows with Latin-safe classes among them ('│', '€', 'é', '中'), words the Latin lexicon
    respells ('TK') and now and then one class that is not safe: the shortcut (return the page as it is) and
    the word pass agree on every cell."""
    import random

    import numpy as np

    from ocr_model.page import COLS, ROWS
    from ocr_model.page import glyphs as G

    table = G.classes()
    group_of = G.group_of_classes(len(table))
    safe = G._latin_safe(len(table))
    extra = [k for k in np.nonzero(safe)[0] if k >= G.ASCII_CLASSES]
    unsafe = np.nonzero(~safe)[0]
    assert table.index("│") in extra and table.index("é") in extra and table.index("а") not in extra
    words = "the is in IN TK IT OK SIZE INFO xi sis jIs POSIX 'o' HOME Visit a I".split() + list(G.homoglyph_lexicon().get("LATIN LATIN", {}))
    rng = random.Random(0)
    for _ in range(300):
        cells = np.zeros((ROWS, COLS), dtype=np.int64)
        for r in range(rng.randint(1, 6)):
            row: list[int] = []
            while len(row) < COLS:
                w = rng.choice(words) if rng.random() < 0.7 else "".join(rng.choice("aeiocpxyjsABCEHIKMNOPTXZ013,.;:'-|") for _ in range(rng.randint(1, 6)))
                row += [int(group_of[table.index(c)]) for c in w if c in table] + [0]
            cells[r] = row[:COLS]
            for _ in range(rng.randint(0, 3)):
                cells[r, rng.randrange(COLS)] = int(rng.choice(extra))
        if rng.random() < 0.2:
            cells[rng.randrange(ROWS), rng.randrange(COLS)] = int(group_of[int(rng.choice(unsafe))])
        fast = G.resolve_homoglyphs(cells)
        monkeypatch.setitem(G._RULES, "shortcut", False)
        slow = G.resolve_homoglyphs(cells)
        monkeypatch.setitem(G._RULES, "shortcut", True)
        assert np.array_equal(fast, slow), G.cells_text(cells)


def _spelled_as_page_by_page(cells):
    """spell_pages(cells) against resolve_homoglyphs and cells_text page by page (and the input left as it
    was): its texts."""
    import numpy as np

    from ocr_model.page import glyphs as G

    before = cells.copy()
    got, texts = G.spell_pages(cells)
    want = np.stack([G.resolve_homoglyphs(c) for c in cells])
    assert np.array_equal(got, want)
    assert texts == [G.cells_text(c) for c in want]
    assert np.array_equal(cells, before)
    return texts


def test_spell_pages_is_resolve_homoglyphs_and_cells_text_page_by_page():
    """The reader's batch pass against the page-by-page one: Latin, Cyrillic and Greek pages read as shapes,
    pages of ASCII only, of Latin-safe classes (with a word the Latin lexicon respells in an ASCII row, or in
    a row of its own), and all blank, in one batch."""
    import numpy as np

    from ocr_model.page import COLS, ROWS
    from ocr_model.page import glyphs as G

    group_of = G.group_of_classes(G.n_classes())

    def shapes(text: str) -> np.ndarray:
        return group_of[G.glyph_classes(render_plain_page(text).cell_codes())]

    table = G.classes()
    key = next(iter(G.homoglyph_lexicon().get("LATIN LATIN", {"TK": ""})))
    pages = [shapes(t) for t in ("Привет, как дела? Всё хорошо.", "Καλημέρα, τι κάνεις;", "plain ASCII, OK",
                                 f"a table │ of 5 € and é\n{key} in its own row", f"{key} here\nand │ there",
                                 "ОК and КВ and ABTOP", "стандарт POSIX и сигнал EPIPE")]
    pages.append(np.zeros((ROWS, COLS), dtype=np.int64))
    mixed = shapes("Latin words, then\nслова по-русски")
    mixed[10, :3] = [table.index(c) for c in "中€é"]
    pages.append(mixed)
    texts = _spelled_as_page_by_page(np.stack(pages))
    assert texts[0] == "Привет, как дела? Всё хорошо." and texts[1] == "Καλημέρα, τι κάνεις;"


def test_spell_pages_matches_the_page_pass_on_fuzzed_batches():
    """Batches of pages like a reader's misreads: ASCII rows of look-alike words (the Latin lexicon's among
    them), now and then a Latin-safe class, a Cyrillic or Greek letter, any class at all, or a blank page."""
    import random

    import numpy as np

    from ocr_model.page import COLS, ROWS
    from ocr_model.page import glyphs as G

    table = G.classes()
    group_of = G.group_of_classes(len(table))
    safe = np.nonzero(G._latin_safe(len(table)))[0]
    extra = [int(k) for k in safe if k >= G.ASCII_CLASSES]
    words = "the is in TK OK POSIX 'o' Visit a I ОК КВ и на καὶ".split() + list(G.homoglyph_lexicon().get("LATIN LATIN", {}))
    rng = random.Random(5)
    for _ in range(8):
        pages = []
        for _ in range(16):
            cells = np.zeros((ROWS, COLS), dtype=np.int64)
            for r in range(rng.randint(0, 5)):
                row: list[int] = []
                while len(row) < COLS:
                    row += [int(group_of[table.index(c)]) for c in rng.choice(words) if c in table] + [0]
                cells[r] = row[:COLS]
                roll = rng.random()
                if roll < 0.3:
                    cells[r, rng.randrange(COLS)] = rng.choice(extra)
                elif roll < 0.4:
                    cells[r, rng.randrange(COLS)] = rng.randrange(len(table))
            pages.append(cells)
        _spelled_as_page_by_page(np.stack(pages))
