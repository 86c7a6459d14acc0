"""Smoke test of benchmarks/storage.py on a tiny fake corpus with a random tiny-debug model."""

from __future__ import annotations

import gzip
import json
import random


def test_storage_table_covers_levels_and_fading(load_benchmark, tiny_model_dir, tmp_path, capsys):
    rng = random.Random(0)
    words = sorted({"".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 9))) for _ in range(300)})
    for kind in ("prose", "dialogue", "code"):
        with gzip.open(tmp_path / f"{kind}.heldout.txt.gz", "wt") as f:
            f.write("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(500)))
    with gzip.open(tmp_path / "words.txt.gz", "wt") as f:
        f.write("\n".join(words))
    storage = load_benchmark("storage")
    out = tmp_path / "storage.json"
    storage.main(["--corpus", str(tmp_path), "--pages", "1", "--tiers", "tiny,gist", "--model", str(tiny_model_dir),
                  "--max-new-tokens", "4", "--json", str(out)])
    rows = json.loads(out.read_text())
    assert {(r["tier"], r["levels"], r["how"]) for r in rows} == {
        (t, lv, how) for t in ("tiny", "gist") for lv in (256, 16) for how in ("direct", "faded")}
    by = {(r["tier"], r["levels"], r["how"]): r for r in rows}
    for t in ("tiny", "gist"):  # 16 greys always take fewer bytes than 8 bits for the same page
        assert by[(t, 16, "direct")]["png_bytes"] < by[(t, 256, "direct")]["png_bytes"]
    assert all(0.0 <= r["default views"] <= 1.0 and "own view" not in r for r in rows)  # no glyph heads here
    assert "| gist | 16 | faded |" in capsys.readouterr().out
