from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ocr_model.config import OpticalConfig, load_config, preset_names
from ocr_model.info import main as info_main
from ocr_model.info import model_info
from ocr_model.model import OpticalModel


def test_presets_load():
    for name in ("deepseek-ocr", "small", "tiny-debug"):
        assert name in preset_names()
        assert load_config(name).name == name


def test_official_parameter_count_on_meta():
    cfg = load_config("deepseek-ocr")
    with torch.device("meta"):
        model = OpticalModel(cfg)
    assert sum(p.numel() for p in model.parameters()) == 3_336_106_240
    # the per-part counts of the key table (deepseek-ocr.md section 1.6)
    assert sum(p.numel() for p in model.sam_model.parameters()) == 95_569_152
    assert sum(p.numel() for p in model.vision_model.parameters()) == 303_177_728
    assert sum(p.numel() for p in model.decoder.parameters()) == 2_934_734_080


def test_info_json(capsys):
    info_main(["small"])
    out = json.loads(capsys.readouterr().out)
    assert out["visual_tokens"] == {"tiny": 64, "small": 100, "base": 256, "large": 400}
    assert out["visual_positions"]["base"] == 273
    assert out["parameters"] > out["active_parameters"] > 0
    official = model_info(load_config("deepseek-ocr"))
    assert official["parameters"] == 3_336_106_240
    # decoder active incl. embeddings and lm_head: the paper's "A570M" (574.1M in deepseek-ocr.md 1.6)
    assert round(official["decoder_active_parameters"] / 1e6, 1) == 574.1


def test_config_round_trip_and_errors(tmp_path):
    cfg = load_config("small")
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg.to_dict()))
    assert load_config(p) == cfg
    with pytest.raises(FileNotFoundError, match="presets"):
        load_config("no-such-preset")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_config(tmp_path)
    bad = cfg.to_dict()
    bad["decoder"]["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        OpticalConfig.from_dict(bad)
    with pytest.raises(ValueError, match="clip.dim"):
        dataclasses.replace(cfg, clip=dataclasses.replace(cfg.clip, dim=256))
    official = tmp_path / "official.json"
    official.write_text(json.dumps({"language_config": {}}))
    with pytest.raises(ValueError, match="load_official"):
        load_config(official)
