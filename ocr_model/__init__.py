"""ocr_model: a DeepSeek-OCR-style optical model (DeepEncoder + DeepSeek-MoE decoder), sized by config.

    from ocr_model import load_config, build_model, to_tensor
    model = build_model(load_config("small"))
    visual = model.encode(to_tensor(pages, "base"))          # [B, 273, D]
    gens = model.generate(visual, max_new_tokens=1000)         # list[Generation]
"""
from __future__ import annotations

from .config import MODES, ClipConfig, DecoderConfig, OpticalConfig, ProjectorConfig, SamConfig, load_config
from .image_process import GundamInput, to_gundam, to_tensor
from .model import Generation, OpticalModel, Output
from .tokenizer import Tokenizer, train_tokenizer
from .weights import build_model, load_official, load_pretrained, save_pretrained

__all__ = [
    "MODES", "SamConfig", "ClipConfig", "ProjectorConfig", "DecoderConfig", "OpticalConfig", "load_config",
    "to_tensor", "to_gundam", "GundamInput",
    "OpticalModel", "Output", "Generation",
    "Tokenizer", "train_tokenizer",
    "build_model", "save_pretrained", "load_pretrained", "load_official",
]
