"""Smoke test of benchmarks/fox_like.py on a tiny fake corpus with a random tiny-debug model."""

from __future__ import annotations

import gzip
import json
import random

import pytest


@pytest.fixture
def fox(load_benchmark):
    return load_benchmark("fox_like")


@pytest.fixture
def corpus_dir(tmp_path):
    rng = random.Random(0)
    words = sorted({"".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 9))) for _ in range(400)})
    for kind in ("prose", "dialogue", "code"):
        text = "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(2000))
        with gzip.open(tmp_path / f"{kind}.heldout.txt.gz", "wt") as f:
            f.write(text)
    with gzip.open(tmp_path / "words.txt.gz", "wt") as f:
        f.write("\n".join(words))
    return tmp_path


def test_buckets_and_squash(fox):
    assert fox.bucket_of(599) is None and fox.bucket_of(600) == (600, 700) and fox.bucket_of(1299) == (1200, 1300)
    assert fox.bucket_of(1300) is None
    assert fox.squash("  a\n\n  b\tc ") == "a b c"


def test_sample_pages_fills_buckets_by_token_count(fox, corpus_dir):
    from ocr_model.data import Corpus

    pages = fox.sample_pages(Corpus(str(corpus_dir), "heldout"), 1, lambda t: len(t) // 3, seed=0, max_tries=60)
    assert pages, "a full page of 12-word lines is ~2800 chars: ~930 'tokens' at 3 chars each"
    for p in pages:
        lo, hi = p["bucket"]
        assert lo <= len(p["page"].text) // 3 < hi and p["text_tokens"] == len(p["page"].text) // 3
    assert len({p["bucket"] for p in pages}) == len(pages)  # one per bucket


def test_fox_like_end_to_end_with_a_tiny_model(fox, corpus_dir, tiny_model_dir, tmp_path, monkeypatch, capsys):
    import demos.haystack as haystack

    monkeypatch.setattr(haystack, "token_counter", lambda: ("chars/3", lambda t: list(range(len(t) // 3)), None))
    out = tmp_path / "fox.json"
    res = fox.main(
        [
            "--corpus",
            str(corpus_dir),
            "--model",
            str(tiny_model_dir),
            "--pages",
            "1",
            "--tiers",
            "tiny,gist",
            "--baselines",
            "",
            "--max-new-tokens",
            "4",
            "--threads",
            "1",
            "--max-tries",
            "60",
            "--quiet",
            "--json",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["rows"] and len(saved["rows"]) == 2 * len(saved["pages"])
    for r in saved["rows"]:
        assert 0.0 <= r["char_precision"] <= 1.0 and 0.0 <= r["fox_precision"] <= 1.0
        assert r["compression"] == pytest.approx(r["text_tokens"] / fox.TIER_TOKENS[r["tier"]])
    assert res["notes"]  # the upper buckets cannot be filled by these pages: said, not hidden
    printed = capsys.readouterr().out
    assert "paper 64 vt" in printed and "optimem model" in printed
