"""Fixtures shared by the test packages: a tiny random-weight checkpoint."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-weight tiny-debug checkpoint with a tokenizer trained on the fly (a second or two)."""
    import torch

    from ocr_model.config import load_config
    from ocr_model.tokenizer import train_tokenizer
    from ocr_model.weights import build_model, save_pretrained

    torch.manual_seed(0)
    cfg = load_config("tiny-debug")
    texts = [f"[user #{i}] the access code for vault {i} is QX-{1000 + i}-MB; a quick brown fox." for i in range(200)]
    tok = train_tokenizer(texts, vocab_size=cfg.decoder.vocab_size)
    d = tmp_path_factory.mktemp("tiny-model")
    save_pretrained(build_model(cfg), tok, d)
    return d


@pytest.fixture(scope="session")
def load_benchmark():
    """load_benchmark(name) imports benchmarks/<name>.py (a script folder, not a package) as a module."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, root / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
