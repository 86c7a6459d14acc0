"""Smoke test of benchmarks/pageout.py --density-only on a tiny LoCoMo-shaped file (no page is read)."""

from __future__ import annotations

import json

from .test_locomo_recall import _locomo


def test_density_only_reports_cells_and_turns_per_page(tmp_path, load_benchmark, capsys, tiny_model_dir):
    po = load_benchmark("pageout")
    po.main(["--locomo", str(_locomo(tmp_path, n_turns=120)), "--conversations", "1", "--density-only",
             "--model", str(tiny_model_dir), "--working-tokens", "600"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    summary = lines[-1]["summary"]
    assert summary["pages"] >= 2 and 0 < summary["cells_per_page"] <= 2850 and summary["turns_per_page"] > 1
