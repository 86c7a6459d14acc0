"""ocr_model.eval: the metrics and the --texts/--out interface others score with."""
from __future__ import annotations

import json
import random

import pytest

from ocr_model import eval as ev


def _levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j - 1] + (ca != cb), prev[j] + 1, row[j - 1] + 1)
    return row[-1]


def test_edit_distance_matches_the_textbook_recurrence():
    rng = random.Random(0)
    for _ in range(300):
        a = "".join(rng.choice("ab\u00e9\u4e2d") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("ab\u00e9\u4e2d") for _ in range(rng.randint(0, 12)))
        assert ev.edit_distance(a, b) == _levenshtein(a, b), (a, b)


def test_precisions():
    assert ev.char_precision("hello", "hello") == 1.0
    assert ev.char_precision("hello", "") == 0.0
    assert ev.char_precision("abcd", "abxd") == 0.75
    assert ev.char_precision("ab", "a very long hallucination") == 0.0  # clipped at 0
    assert ev.fox_word_precision("the cat sat", "the cat the dog") == pytest.approx(2 / 3)
    assert ev.visual_tokens("tiny") == 64 and ev.visual_tokens("base") == 256 and ev.visual_tokens("gist") == 36


def test_texts_to_out_jsonl(tmp_path, tiny_model_dir):
    texts = tmp_path / "texts.jsonl"
    texts.write_text("\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(["abc def", "x" * 5000])))
    out = tmp_path / "out.jsonl"
    ev.main(["--texts", str(texts), "--tier", "tiny", "--out", str(out), "--model", str(tiny_model_dir),
             "--max-new-tokens", "5", "--device", "cpu"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1]
    assert set(rows[0]) == {"id", "reference", "decoded", "visual_tokens", "eos", "seconds"}
    assert rows[0]["reference"] == "abc def" and rows[0]["visual_tokens"] == 64
    assert 0 < len(rows[1]["reference"]) < 5000  # one page: the rest of the text is cut
    assert all(isinstance(r["decoded"], str) and isinstance(r["eos"], bool) for r in rows)


def test_missing_arguments_are_reported():
    with pytest.raises(SystemExit):
        ev.main(["--tier", "base"])


def test_views_argument():
    import argparse

    from optimem.reader import DEFAULT_VIEWS

    assert ev.parse_views("own") == {}
    assert ev.parse_views("default") == DEFAULT_VIEWS
    assert ev.parse_views("small=1,tiny=0.5") == {"small": 1.0, "tiny": 0.5}
    with pytest.raises(argparse.ArgumentTypeError, match="unknown tiers"):
        ev.parse_views("huge=1")
    with pytest.raises(argparse.ArgumentTypeError, match="TIER=WEIGHT"):
        ev.parse_views("small")


def test_read_pages_can_read_pages_as_memory_stores_them():
    import numpy as np

    from ocr_model import page as pg

    class Spy:
        def read(self, images, tier):
            self.images = images
            return images

    page = pg.render_plain_page("The access code for locker 7 is QX-4471-MB.\n" * 10)
    spy = Spy()
    ev.read_pages(spy, [page.image], "small")
    assert spy.images[0].size == (640, 640) and len(np.unique(np.asarray(spy.images[0]))) > 16  # as rendered
    ev.read_pages(spy, [page.image], "small", levels=16)
    grey = np.unique(np.asarray(spy.images[0]))
    assert spy.images[0].mode == "L" and len(grey) <= 16 and grey.min() == 0 and grey.max() == 255
