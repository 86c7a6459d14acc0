"""Store files: sizes on disk."""

from __future__ import annotations


def test_store_size_skips_files_that_vanish_mid_walk(tmp_path, monkeypatch):
    """Another process's writer renames its temp file between our is_file() and stat(): skip it, don't fail."""
    from pathlib import Path

    from optimem.store import files

    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / ".b.png.123.tmp").write_bytes(b"y" * 5)
    assert files.dir_bytes(tmp_path) == 15
    real_stat, calls = Path.stat, {}

    def stat(self, *a, **k):  # the temp file exists for the first look, then it is gone
        if self.name.endswith(".tmp"):
            calls[self.name] = calls.get(self.name, 0) + 1
            if calls[self.name] > 1:
                raise FileNotFoundError(self)
        return real_stat(self, *a, **k)

    monkeypatch.setattr(Path, "stat", stat)
    assert files.dir_bytes(tmp_path) == 10
