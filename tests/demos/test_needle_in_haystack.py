"""Smoke tests of the needle-in-a-haystack demo: tiny sizes, a random tiny-debug model, hashing embedder."""

from __future__ import annotations

import json
import random

import pytest

from demos import needle_in_haystack as niah


@pytest.fixture(autouse=True)
def _counter(monkeypatch):
    """cl100k when quicktok-v1 is installed (the bench extra); else whitespace words, same code path."""
    try:
        import quicktok  # noqa: F401
    except ImportError:
        monkeypatch.setattr(niah, "token_counter", lambda: ("words", _words, lambda ids: " ".join(ids)))


def _words(text: str) -> list[str]:
    return text.split(" ")


def _count(text: str) -> int:
    return len(text.split())


def test_needles_are_distinct_and_answerable():
    needles = niah.make_needles(12, random.Random(0))
    assert len({(n.what, n.of) for n in needles}) == 12
    for n in needles:
        assert n.value in n.statement and n.of in n.question and n.value not in n.question


def test_build_haystack_places_needles_at_depths():
    pool = [[{"role": "user", "text": f"turn {i} " + "word " * 20}] for i in range(10)]
    needles = niah.make_needles(3, random.Random(1))
    turns, pos, recycled = niah.build_haystack(pool, 500, needles, [0, 50, 100], _count, random.Random(2))
    assert recycled  # 10 turns of ~22 words cannot make 500 words without reusing the pool
    assert pos[0] == 0 and pos[2] == len(turns) - 1
    assert 0.4 < pos[1] / len(turns) < 0.6
    for k, p in enumerate(pos):
        assert turns[p]["text"] == needles[k].statement
    haystack_words = sum(_count(f"{t['role']}: {t['text']}") for t in turns if "needle" not in t)
    assert haystack_words >= 500


def test_load_haystack_formats(tmp_path):
    locomo = [
        {
            "conversation": {
                "speaker_a": "A",
                "speaker_b": "B",
                "session_1_date_time": "x",
                "session_1": [
                    {"speaker": "A", "dia_id": "D1:1", "text": "hello there"},
                    {"speaker": "B", "dia_id": "D1:2", "text": "hi"},
                ],
                "session_2_date_time": "y",
                "session_2": [{"speaker": "A", "dia_id": "D2:1", "text": "again"}],
            }
        }
    ]
    (tmp_path / "l.json").write_text(json.dumps(locomo))
    convs, desc = niah.load_haystack(str(tmp_path / "l.json"))
    assert [[t["text"] for t in c] for c in convs] == [["hello there", "hi"], ["again"]]
    assert convs[0][0]["role"] == "A" and "2 sessions" in desc
    (tmp_path / "m.jsonl").write_text('{"role": "user", "content": "one"}\n{"role": "assistant", "content": "two"}\n')
    convs, _ = niah.load_haystack(str(tmp_path / "m.jsonl"))
    assert [(t["role"], t["text"]) for t in convs[0]] == [("user", "one"), ("assistant", "two")]
    (tmp_path / "t.txt").write_text("para one\n\npara two\n\n\npara three")
    convs, _ = niah.load_haystack(str(tmp_path / "t.txt"))
    assert [t["role"] for t in convs[0]] == ["user", "assistant", "user"]
    with pytest.raises(SystemExit, match="no such file"):
        niah.load_haystack(str(tmp_path / "missing.json"))


def _haystack_file(tmp_path):
    """A JSONL chat, so the smoke tests need none of the bench extra's text packages."""
    rng = random.Random(3)
    words = ["garden", "river", "ticket", "lunch", "meeting", "train", "music", "weather", "coffee", "report"]
    lines = [
        json.dumps({"role": ("user", "assistant")[i % 2], "content": " ".join(rng.choice(words) for _ in range(25))})
        for i in range(120)
    ]
    path = tmp_path / "haystack.jsonl"
    path.write_text("\n".join(lines))
    return path


def test_default_pool_comes_from_installed_packages():
    pytest.importorskip("chatterbot_corpus", exc_type=ImportError)
    pytest.importorskip("faker", exc_type=ImportError)
    pool, desc = niah.default_pool(0)
    assert "chatterbot-corpus" in desc and "faker" in desc
    assert all(t["role"] in ("user", "assistant") and t["text"].strip() for conv in pool[:200] for t in conv)


def _run(tmp_path, model_dir, *extra):
    out = tmp_path / "out"
    args = [
        "--haystack",
        str(_haystack_file(tmp_path)),
        "--model",
        str(model_dir),
        "--lengths",
        "300,700",
        "--depths",
        "0,100",
        "--max-new-tokens",
        "4",
        "--embedder",
        "hashing",
        "--working-tokens",
        "300",
        "--threads",
        "1",
        "--quiet",
        "--no-verify",  # a random-weight model reads nothing back: verified page-out would keep every turn
        "--out",
        str(out),
        *extra,
    ]
    return niah.main(args), out


def test_demo_end_to_end_with_a_tiny_model(tmp_path, tiny_model_dir):
    results, out = _run(tmp_path, tiny_model_dir, "--budget", "200")
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(results["summary"]))
    for system in niah.SYSTEMS:
        s = saved["summary"][system]
        assert {"retrieval_hit_rate", "exact_rate", "mean_context_tokens"} <= set(s)
        rows = [t for t in saved["trials"] if t["system"] == system]
        assert len(rows) == 4
        assert s["exact_rate"] == sum(t["exact"] for t in rows) / 4
        assert all(t["context_tokens"] <= 200 for t in rows)
    opt = [t for t in saved["trials"] if t["system"] == "optimem"]
    # the deepest needles were paged out (300-token working memory) and read back by a random model
    assert all(t["tier"] != "verbatim" for t in opt if t["depth"] == 0)
    # the newest needle is the last turn: verbatim, and the truncated window holds it
    assert all(t["tier"] == "verbatim" for t in opt if t["depth"] == 100)
    trunc = {(t["length"], t["depth"]): t for t in saved["trials"] if t["system"] == "truncation"}
    assert all(trunc[(n, 100)]["exact"] for n in (300, 700))
    assert not any(trunc[(n, 0)]["exact"] for n in (300, 700))  # 200 tokens cannot reach back to the start
    assert saved["stores"][0]["turns_archived"] > 0
    try:
        import matplotlib  # noqa: F401

        assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    except ImportError:
        assert not (out / "heatmap.png").exists()
    table = (out / "table.md").read_text()
    assert all(s in table for s in niah.SYSTEMS)
    n_exact = {x: sum(bool(t["exact"]) for t in saved["trials"] if t["system"] == x) for x in niah.SYSTEMS}
    line = niah.verdict(saved)
    assert line.startswith(f"optimem returned the exact needle in {n_exact['optimem']}/4 cases at ")
    assert f"truncation {n_exact['truncation']}/4" in line and line in table
    assert "V verbatim" in table  # the heatmap's legend
    assert saved["config"]["model"] == tiny_model_dir.name  # outside the repository: its name, not the path
    assert str(tmp_path) not in table


def test_a_budget_over_the_history_lets_truncation_see_everything(tmp_path, tiny_model_dir):
    results, _ = _run(tmp_path, tiny_model_dir, "--budget", "100000", "--lengths", "300")
    assert results["summary"]["truncation"]["exact_rate"] == 1.0
    assert results["summary"]["truncation"]["mean_context_tokens"] == results["trials"][0]["history_tokens"]


def test_caching_embedder_embeds_each_text_once_and_text_rag_ranks_by_similarity():
    from optimem import HashingEmbedder

    calls = []

    class Counting(HashingEmbedder):
        def embed_documents(self, texts):
            calls.extend(texts)
            return super().embed_documents(texts)

    emb = niah.CachingEmbedder(Counting())
    turns = [{"role": "user", "text": f"note {i}: the weather in town {i} is mild"} for i in range(20)]
    turns[7] = {"role": "user", "text": niah.Needle("access code", "vault 7", "QX-4471-MB").statement}
    rag = niah.TextRag(turns, emb)
    again = emb.embed_documents([f"user: {turns[3]['text']}"])
    assert len(calls) == 20 and again.shape == (1, emb.dim)  # the second request came from the cache
    assert rag.top("What is the access code for vault 7?", 3)[0] == 7


def test_fit_keeps_whole_lines_within_the_budget():
    ctx, n = niah._fit(["a b c", "d e", "f g h i"], 5, _count)
    assert ctx == "a b c\nd e" and n == 5
    assert niah._fit(["too many words here"], 2, _count) == ("", 0)
