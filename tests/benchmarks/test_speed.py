"""Smoke test of benchmarks/speed.py: tiny sizes, a random tiny-debug model; checks structure, not times."""

from __future__ import annotations

import json
import random


def test_instant_reader_is_a_page_reader(load_benchmark):
    from optimem.reader import PageReader

    speed = load_benchmark("speed")
    assert isinstance(speed.InstantReader(), PageReader)


def _conversation(n_turns, seed=0):
    rng = random.Random(seed)
    words = ["garden", "river", "ticket", "lunch", "meeting", "train", "music", "weather", "coffee", "report"]
    return [
        {"role": ("user", "assistant")[i % 2], "text": " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))}
        for i in range(n_turns)
    ]


def test_speed_end_to_end_with_a_tiny_model(tiny_model_dir, tmp_path, capsys, monkeypatch, load_benchmark):
    speed = load_benchmark("speed")
    monkeypatch.setattr(speed, "conversation", _conversation)  # no bench-extra text packages needed
    out = tmp_path / "speed.json"
    res = speed.main(
        [
            "--model",
            str(tiny_model_dir),
            "--archive-sizes",
            "300,600",
            "--queries",
            "3",
            "--repeats",
            "1",
            "--decode-tokens",
            "4",
            "--add-turns",
            "12",
            "--threads",
            "1",
            "--k",
            "2",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "lat.png"),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["render"]["pages"] >= 1 and saved["render"]["pages_per_s"] > 0
    assert set(saved["model_speed"]["encode"]) == {f"{t}/b{b}" for t in speed.TIERS for b in (1, 4)}
    assert saved["add"]["turns"] == 12
    sizes = saved["recall"]["sizes"]
    assert [int(k) for k in sizes] == [300, 600]
    assert all(row["archived_turns"] >= int(k) for k, row in sizes.items())
    assert saved["recall"]["with_model"]["queries"] == 3
    b = saved["bytes"]
    assert set(b["png_bytes_per_turn"]) == set(speed.TIERS)
    assert b["png_bytes_per_turn"]["gist"] < b["png_bytes_per_turn"]["base"]  # fewer pixels, fewer bytes
    assert "Recall latency" in capsys.readouterr().out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert res["machine"] and (tmp_path / "lat.png").exists()
