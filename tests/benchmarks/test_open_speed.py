"""Smoke test of benchmarks/open_speed.py with a random tiny-debug model: every step is timed, in order."""

from __future__ import annotations

import json


def test_open_speed_times_every_step(load_benchmark, tiny_model_dir, tmp_path, capsys):
    open_speed = load_benchmark("open_speed")
    out = tmp_path / "open.json"
    result = open_speed.main(["--model", str(tiny_model_dir), "--turns", "16", "--repeats", "1", "--json", str(out)])
    steps = ["cli stats", "import optimem", "Memory(path)", "recall, no decode", "recall, verbatim",
             "recall, read page", "recall again"]
    assert list(result["steps"]) == steps and json.loads(out.read_text())["turns"] == 16
    assert all(r["min_s"] > 0 for r in result["steps"].values())
    assert "| recall, read page |" in capsys.readouterr().out
