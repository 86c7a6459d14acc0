"""ocr_model: a DeepSeek-OCR-style optical model (DeepEncoder + DeepSeek-MoE decoder), sized by config.

    from ocr_model import load_config, build_model, to_tensor
    model = build_model(load_config("small"))
    visual = model.encode(to_tensor(pages, "base"))          # [B, 273, D]
    gens = model.generate(visual, max_new_tokens=1000)         # list[Generation]

The page format it reads is the sub-package ocr_model.page (no torch). Names below are imported on first
use, so `import ocr_model.page` does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "MODES": "config", "SamConfig": "config", "ClipConfig": "config", "ProjectorConfig": "config",
    "DecoderConfig": "config", "OpticalConfig": "config", "load_config": "config",
    "to_tensor": "image_process", "to_gundam": "image_process", "GundamInput": "image_process",
    "OpticalModel": "model", "Output": "model", "Generation": "model",
    "Tokenizer": "tokenizer", "train_tokenizer": "tokenizer",
    "build_model": "weights", "save_pretrained": "weights", "load_pretrained": "weights", "load_official": "weights",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ocr_model' has no attribute {name!r}")
