"""The token cache files (optimem.store.tokens): keyed by page image and weights, dropped with the page."""

from __future__ import annotations

import numpy as np

from optimem.store import tokens

PAGE = "pages/default-0123abcd/" + "a" * 32 + ".png"
FP, OTHER_FP = "0123456789abcdef", "fedcba9876543210"


def _grids(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"base": rng.normal(size=(4, 4, 8)).astype(np.float32), "tiny": rng.normal(size=(2, 2, 8))}


def test_kept_grids_come_back_for_the_same_image_and_weights_only(tmp_path):
    g = _grids()
    assert tokens.save(tmp_path, PAGE, "sha-1", FP, g)
    got = tokens.load(tmp_path, PAGE, "sha-1", FP)
    assert sorted(got) == ["base", "tiny"] and got["base"].dtype == np.float16
    assert np.array_equal(got["base"], g["base"].astype(np.float16))
    assert tokens.load(tmp_path, PAGE, "sha-2", FP) == {}  # another image under the same name: stale
    assert tokens.load(tmp_path, PAGE, "sha-1", OTHER_FP) == {}  # other weights
    assert tokens.load(tmp_path, PAGE, "sha-1", None) == {} and not tokens.save(tmp_path, PAGE, "sha-1", None, g)
    # new weights replace the page's old file; a damaged file reads as nothing kept
    assert tokens.save(tmp_path, PAGE, "sha-1", OTHER_FP, g)
    files = sorted(p.name for p in (tmp_path / "tokens").rglob("*.npz"))
    assert files == ["a" * 32 + f".{OTHER_FP}.npz"]
    (tmp_path / "tokens" / "default-0123abcd" / files[0]).write_bytes(b"not a zip")
    assert tokens.load(tmp_path, PAGE, "sha-1", OTHER_FP) == {}


def test_drop_and_sweep_delete_the_grids_of_pages_that_are_gone(tmp_path):
    other = PAGE.replace("a" * 32, "b" * 32)
    tokens.save(tmp_path, PAGE, "s1", FP, _grids(1))
    tokens.save(tmp_path, other, "s2", FP, _grids(2))
    tokens.drop(tmp_path, [PAGE])
    assert tokens.load(tmp_path, PAGE, "s1", FP) == {} and tokens.load(tmp_path, other, "s2", FP)
    junk = tmp_path / "tokens" / "default-0123abcd" / "stray.tmp"
    junk.write_bytes(b"x")
    assert tokens.sweep(tmp_path, [PAGE]) == 2  # the other page's grids (no such page) and the stray file
    assert not any((tmp_path / "tokens").rglob("*.*"))
    assert tokens.sweep(tmp_path / "nowhere", []) == 0


def test_only_page_files_named_as_the_store_names_them_get_grids(tmp_path):
    """A path from a tampered database never steers where grids are written or what is deleted."""
    for bad in ("pages/../../evil.png", "../x/" + "a" * 32 + ".png", "pages/ns/not-a-uuid.png", "/etc/" + "a" * 32 + ".png"):
        assert not tokens.save(tmp_path, bad, "s", FP, _grids())
        assert tokens.load(tmp_path, bad, "s", FP) == {}
        tokens.drop(tmp_path, [bad])
    assert not tokens.save(tmp_path, PAGE, "s", "../../x", _grids())  # nor a strange fingerprint
    assert not any(tmp_path.rglob("*"))
