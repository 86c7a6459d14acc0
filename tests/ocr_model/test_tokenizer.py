from __future__ import annotations

import pytest

from ocr_model.tokenizer import SPECIAL_TOKENS, Tokenizer, train_tokenizer

TEXTS = ["def f(x):\n    return x * 2\n", "The quick brown fox jumps over the lazy dog.", "[user #12 2026-11-28 13:45]",
         "naïve café — 東京 ☃ 🎉", "    indented\ttabs\r\n"] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=320)


def test_specials_by_name(tok):
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.image_id) == (0, 1, 2, 3)
    assert tok.vocab_size <= 320


@pytest.mark.parametrize("text", ["", "hello world", "naïve café — 東京 ☃ 🎉 \u0000\x7f", "  lead and trail  ",
                                  "line\n\nbreaks\r\n\ttab", "literal <image> and <｜end▁of▁sentence｜>", "x" * 500,
                                  "unseen: Ωμέγα ∮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \ufffd"])
def test_exact_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(i not in (tok.bos_id, tok.eos_id, tok.pad_id, tok.image_id) for i in ids)


def test_save_load(tok, tmp_path):
    tok.save(tmp_path / "tokenizer.json")
    again = Tokenizer.from_file(tmp_path)
    assert again.encode("quick brown fox") == tok.encode("quick brown fox")
    assert again.decode([tok.eos_id] + tok.encode("ok")) == "ok"  # specials dropped on decode
    assert Tokenizer.from_official(tmp_path).image_id == 3


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.from_file(tmp_path)
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(TEXTS, vocab_size=100)
    from tokenizers import Tokenizer as HF, models
    with pytest.raises(ValueError, match="bos"):
        Tokenizer(HF(models.BPE()))
    assert set(SPECIAL_TOKENS) == {"bos", "eos", "pad", "image"}
