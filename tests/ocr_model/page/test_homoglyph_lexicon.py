"""The lexicon of tied words (glyphs.homoglyph_lexicon): a small stored table of spellings of the same shapes,
used by resolve_homoglyphs where the rules alone misspell a word ('НОМЕ' for 'HOME' in Russian text), never on
rows of ASCII, options or escapes."""
from __future__ import annotations

import random

import numpy as np
import pytest

from ocr_model.page import glyphs, render_plain_page


def _read_shapes(text: str, lexicon: bool = True) -> tuple[str, str]:
    page = render_plain_page(text)
    cls = glyphs.glyph_classes(page.cell_codes())
    canon = glyphs.group_of_classes(glyphs.n_classes())[cls]
    was = glyphs._RULES["lexicon"]
    glyphs._RULES["lexicon"] = lexicon
    try:
        return page.text, glyphs.cells_text(glyphs.resolve_homoglyphs(canon))
    finally:
        glyphs._RULES["lexicon"] = was


def test_the_stored_lexicon_is_small_and_spells_the_same_shapes():
    assert glyphs.LEXICON_FILE.stat().st_size < 1_000_000
    lexicon = glyphs.homoglyph_lexicon()
    assert 0 < sum(len(w) for w in lexicon.values()) <= 4000
    canon = glyphs.group_of_classes(glyphs.n_classes())
    index = glyphs._class_index()
    for context, words in lexicon.items():
        page, row = context.split(" ")
        assert {page, row} <= set(glyphs._SCRIPTS)
        for old, new in words.items():
            assert old != new and len(old) == len(new)
            assert all(glyphs._common(ch) for ch in new)
            assert [canon[index[c]] for c in old] == [canon[index[c]] for c in new]


@pytest.mark.parametrize("text", [
    "Переменная HOME задаёт домашний каталог",  # the rules: НОМЕ (Cyrillic, like its neighbours)
    "Ошибка TCP соединения",                      # ТСР
    "значение MAX для поля",                      # МАХ
    "Ако су info и grub нађени у систему",        # Serbian: the rules give Latin 'Aĸo cy' (next to 'info')
])
def test_the_lexicon_spells_tied_words_the_rules_get_wrong(text):
    ref, old = _read_shapes(text, lexicon=False)
    assert old != ref
    assert _read_shapes(text)[1] == ref


@pytest.mark.parametrize("text", [
    "ключ -i задаёт режим",                  # an option stays Latin
    "символы \\a и \\xHH в строке",          # so does an escape
    "Якщо існує файл, і у групи немає запису",
    "I am OK. Я тоже.",
])
def test_words_the_rules_spell_right_stay_right(text):
    ref, got = _read_shapes(text)
    assert got == ref


def test_latin_and_ascii_pages_are_unchanged_by_the_lexicon():
    rng = random.Random(3)
    words = ["cy", "OK", "HOME", "i", "y", "x", "TCP", "MAX", "B", "ca", "je", "Café", "naïve", "Ελλάδα", "a", "PATH"]
    for _ in range(10):
        text = "\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(6))
        assert _read_shapes(text)[1] == _read_shapes(text, lexicon=False)[1]
    cells = np.zeros((glyphs.ROWS, glyphs.COLS), dtype=np.int64)  # an ASCII page: returned as it is
    table = glyphs.classes()
    cells[0, :4] = [table.index(c) for c in "HOME"]
    assert (glyphs.resolve_homoglyphs(cells) == cells).all()
