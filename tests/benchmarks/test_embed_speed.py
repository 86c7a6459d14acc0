"""Smoke test of benchmarks/embed_speed.py at toy sizes (the default embedder, child processes)."""

from __future__ import annotations


def test_embed_speed_runs_and_bounds_long_turns(capsys, load_benchmark):
    es = load_benchmark("embed_speed")
    res = es.main(["--sizes", "20000", "--adds", "2", "--threads", "1"])
    assert [r["threads"] for r in res["short"]] == [1, 1]
    assert res["short"][1]["policy"].startswith("default")
    (long,) = res["long"]
    assert long["vectors"] == 20 + 8  # the warm-up turns + MAX_CHUNKS of the long one
    assert 0 < long["embed_seconds"] <= long["seconds"]
    assert "add one turn" in capsys.readouterr().out
