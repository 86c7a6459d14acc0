"""Smoke tests of the read-path and confidence benchmarks: tiny sizes; structure, not times."""

from __future__ import annotations

import json
import shutil


def test_recall_scale_reports_latency_and_where_it_goes(tmp_path, load_benchmark):
    bench = load_benchmark("recall_scale")
    out = tmp_path / "rs.json"
    bench.main(["--turns", "400", "--queries", "3", "--lexical", "16", "--json", str(out)])
    run = json.loads(out.read_text())["runs"][0]
    assert run["dim"] == 384 + 16 and run["index"] == "flat"
    assert run["p50_ms"] > 0 and run["index_search_50_ms"] > 0


def test_read_speed_on_cpu_with_a_tiny_model(tiny_model_dir, tmp_path, load_benchmark):
    from ocr_model import glyphs
    from ocr_model.weights import load_pretrained

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    model, _ = load_pretrained(d)
    glyphs.save_glyph_heads(glyphs.make_glyph_heads(model.cfg.decoder.dim, [8, 10, 16]), d)
    bench = load_benchmark("read_speed")
    out = tmp_path / "read.json"
    bench.main(["--model", str(d), "--device", "cpu", "--pages", "2", "--batch", "2", "--tiers", "tiny",
                "--repeats", "1", "--json", str(out)])
    row = json.loads(out.read_text())["tiers"]["tiny"]
    assert set(row) >= {"encoder", "pixels", "read own", "read inline", "read views", "read rows", "sample_precision"}
    assert all(row[k] > 0 for k in ("encoder", "pixels", "read own", "read inline", "read views", "read rows"))


def test_confidence_auroc_and_logistic_fit(load_benchmark):
    bench = load_benchmark("confidence")
    assert bench.auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert bench.auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert bench.auroc([0.5, 0.5], [True, False]) == 0.5 and bench.auroc([0.5], [True]) is None
    a, b = bench.fit_logistic([-3, -2, -1, 0, 1, 2] * 5, [0, 0, 0, 1, 1, 1] * 5)
    assert a > 0 and -b / a < 0 < 1 - b / a  # rising, centred between the classes
