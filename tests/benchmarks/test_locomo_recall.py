"""Smoke test of benchmarks/locomo_recall.py on a tiny LoCoMo-shaped file with a random tiny-debug model."""

from __future__ import annotations

import json


def _locomo(tmp_path, n_turns=60):
    words = ["apple", "river", "engine", "violet", "cloud", "pencil", "harbor", "garden", "silver", "thunder"]
    session = [
        {
            "speaker": ("Ann", "Bob")[i % 2],
            "dia_id": f"D1:{i + 1}",
            "text": f"topic{i}x " + " ".join(words[(i * 3 + j) % len(words)] for j in range(30)),
        }
        for i in range(n_turns)
    ]
    session[5]["blip_caption"] = "a red kite"
    qa = [
        {"question": f"what about topic{i}x?", "answer": "x", "evidence": [f"D1:{i + 1}"], "category": 1 + i % 5}
        for i in range(0, n_turns, 7)
    ]
    qa.append({"question": "no evidence", "answer": "x", "evidence": [], "category": 1})
    data = [
        {
            "sample_id": "c1",
            "qa": qa,
            "conversation": {"speaker_a": "Ann", "speaker_b": "Bob", "session_1_date_time": "1", "session_1": session},
        }
    ]
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(data))
    return path


def test_load_locomo_and_score(tmp_path, load_benchmark):
    lr = load_benchmark("locomo_recall")
    convs = lr.load_locomo(str(_locomo(tmp_path)))
    assert len(convs) == 1 and len(convs[0]["turns"]) == 60
    assert "[shares a photo of a red kite]" in convs[0]["turns"][5][2]
    assert [t[4] for t in convs[0]["turns"][:2]] == ["user", "assistant"]  # speaker_a is the user
    assert convs[0]["turns"][0][3] is None  # "1" is no LoCoMo date: no timestamp
    assert lr._session_time("1:56 pm on 8 May, 2023") == 1683554160.0
    assert len(convs[0]["questions"]) == 9  # the one without evidence is dropped
    s = lr.score([3, 1, 2], [1, 9])
    assert s["hit@1"] is False and s["hit@5"] is True and s["all@10"] is False


def test_locomo_end_to_end_with_a_tiny_model(tmp_path, tiny_model_dir, capsys, load_benchmark):
    lr = load_benchmark("locomo_recall")
    out = tmp_path / "res.json"
    res = lr.main(
        [
            "--locomo",
            str(_locomo(tmp_path)),
            "--model",
            str(tiny_model_dir),
            "--embedder",
            "hashing",
            "--decode",
            "2",
            "--max-new-tokens",
            "4",
            "--threads",
            "1",
            "--json",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["summary"]["all"]["all"]["questions"] == 9
    raw = saved["summary"]["all"]["all"]["raw"]
    # each question names its evidence turn's unique word: the raw-text hashing retrieval finds most of them
    assert raw["hit@10"] >= 0.5
    for system in ("agents", "speaker-role", "raw", "raw+prev"):
        d = saved["summary"]["all"]["all"][system]
        assert d["hit@1"] <= d["hit@5"] <= d["hit@10"] and d["all@10"] <= d["hit@10"]
    assert saved["summary"]["all"]["all"]["agents"]["hit@10"] >= 0.5
    assert len(saved["reads"]) <= 2 and all(r["tier"] != "verbatim" for r in saved["reads"])
    assert "hit@5" in capsys.readouterr().out and res["config"]["conversations"] == 1
    assert res["config"]["embedder"] == "hashing-256+lex512"
