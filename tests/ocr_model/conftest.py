from __future__ import annotations

import dataclasses

import pytest
import torch

from ocr_model.config import load_config
from ocr_model.weights import build_model


@pytest.fixture(scope="session")
def tiny_cfg():
    return load_config("tiny-debug")


@pytest.fixture(scope="session")
def tiny_model(tiny_cfg):
    torch.manual_seed(0)
    return build_model(tiny_cfg).eval()


@pytest.fixture(scope="session")
def windowed_model(tiny_cfg):
    """tiny-debug without the global SAM layer: cheap at 1024-1280 px."""
    cfg = dataclasses.replace(tiny_cfg, sam=dataclasses.replace(tiny_cfg.sam, global_attn_indexes=()))
    torch.manual_seed(1)
    return build_model(cfg).eval()
