"""`python -m ocr_model.info CONFIG_OR_DIR`: parameter counts and token accounting as JSON.

Stable keys: parameters, active_parameters, visual_tokens {tiny, small, base, large}. The model is
built on the meta device, so even the 3B preset costs no memory.

active_parameters = parameters that do arithmetic for one decoded token: everything except the routed
experts a token does not pick and the input embedding table (a lookup). For the official preset the
decoder part is 574.1M, the paper's "A570M".
"""
from __future__ import annotations

import argparse
import json

import torch

from .config import MODES, OpticalConfig, load_config
from .page.geometry import decoder_positions
from .model import OpticalModel

__all__ = ["model_info"]


def model_info(cfg: OpticalConfig) -> dict:
    with torch.device("meta"):
        model = OpticalModel(cfg)
    total = sum(p.numel() for p in model.parameters())
    dc = cfg.decoder
    n_moe = dc.n_layers - dc.first_k_dense
    per_expert = 3 * dc.dim * dc.moe_intermediate
    inactive = n_moe * (dc.n_routed_experts - dc.n_activated_experts) * per_expert
    inactive += dc.vocab_size * dc.dim  # the input embedding is a lookup
    encoder = sum(p.numel() for m in (model.sam_model, model.vision_model, model.projector) for p in m.parameters())
    decoder = sum(p.numel() for p in model.decoder.parameters())
    grids = {m: s // 64 for m, s in MODES.items()}
    return {
        "config": cfg.name,
        "parameters": total,
        "active_parameters": total - inactive,
        "visual_tokens": {m: g * g for m, g in grids.items() if m in ("tiny", "small", "base", "large")},
        "visual_positions": {m: decoder_positions(g) for m, g in grids.items()},  # incl. newlines + separator
        "gist_visual_tokens": grids["gist"] ** 2,
        "encoder_parameters": encoder,
        "decoder_parameters": decoder,
        "decoder_active_parameters": decoder - inactive,
        "bytes_bf16": 2 * total,
        "vocab_size": dc.vocab_size,
        "max_positions": dc.max_positions,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ocr_model.info", description=__doc__.splitlines()[0])
    ap.add_argument("config", help="preset name (small, tiny-debug, deepseek-ocr), JSON file, or checkpoint dir")
    args = ap.parse_args(argv)
    print(json.dumps(model_info(load_config(args.config)), indent=2))


if __name__ == "__main__":
    main()
