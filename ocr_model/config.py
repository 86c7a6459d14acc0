"""Dataclass configs for the optical model, one per box of the architecture diagram.

    image -> SamConfig (windowed ViT + neck + 16x convs) -> ClipConfig (global ViT)
          -> ProjectorConfig (linear) -> DecoderConfig (DeepSeek-MoE decoder)

Presets live as JSON in `ocr_model/configs/`; `load_config` accepts a preset name, a JSON file or a
checkpoint directory holding `config.json`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocr_model.page.geometry import TIERS

__all__ = [
    "SamConfig",
    "ClipConfig",
    "ProjectorConfig",
    "DecoderConfig",
    "OpticalConfig",
    "MODES",
    "load_config",
    "preset_names",
    "CONFIG_DIR",
]

CONFIG_DIR = Path(__file__).parent / "configs"

# Mode -> square input side in pixels. One visual token per 64x64 pixels (16 px patches, then 4x4 conv
# compression), so side/64 tokens per grid row. "gist" is ours (the renderer's lowest tier), not official.
MODES: dict[str, int] = {name: t.side for name, t in TIERS.items()}  # the page format's one tier table


@dataclass(frozen=True)
class SamConfig:
    """SAM-style ViT (ViTDet): 16x16 patches, windowed attention with a few global layers."""

    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: int = 1024  # grid basis of the absolute pos-embed (img_size/patch_size per side)
    window_size: int = 14  # 0 means every layer is global
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    neck_dim: int = 256
    conv_dims: tuple[int, int] = (512, 1024)  # the 16x compressor: two 3x3 stride-2 convs
    eps: float = 1e-6


@dataclass(frozen=True)
class ClipConfig:
    """CLIP-L-style global ViT that takes the compressed SAM features as its patch embeddings."""

    dim: int = 1024  # must equal SamConfig.conv_dims[-1]
    depth: int = 24
    heads: int = 16
    mlp_dim: int = 4096
    pos_grid: int = 16  # position-embedding grid basis (official: 224/14); interpolated to any grid
    eps: float = 1e-5
    # The official checkpoint still carries CLIP's own 3x14x14 patch conv although the OCR path never
    # uses it; keep it only so the official parameter count and key set match.
    unused_patch_embedding: bool = False


@dataclass(frozen=True)
class ProjectorConfig:
    """Linear map from concat[CLIP out, SAM out] to the decoder width."""

    input_dim: int = 2048
    output_dim: int = 1280


@dataclass(frozen=True)
class DecoderConfig:
    """DeepSeek-MoE decoder (MHA, not MLA): dense SwiGLU for the first layers, MoE after."""

    vocab_size: int = 129280
    dim: int = 1280
    n_layers: int = 12
    n_heads: int = 10
    dense_intermediate: int = 6848
    first_k_dense: int = 1  # layers [0, first_k_dense) use a dense MLP, the rest MoE
    n_routed_experts: int = 64
    n_activated_experts: int = 6  # top-k
    moe_intermediate: int = 896
    n_shared_experts: int = 2  # fused into one SwiGLU of width n_shared_experts * moe_intermediate
    max_positions: int = 8192
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    aux_loss_alpha: float = 0.001  # weight of the sequence-level load-balancing loss
    qk_norm: bool = False  # RMSNorm on q and k per head; ours only (training stability), official has none
    bos_id: int = 0
    eos_id: int = 1
    pad_id: int = 2

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


@dataclass(frozen=True)
class OpticalConfig:
    """The whole model. `name` is informational (the preset it came from)."""

    sam: SamConfig = field(default_factory=SamConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    name: str = "custom"

    def __post_init__(self) -> None:
        s, c, p, d = self.sam, self.clip, self.projector, self.decoder
        problems = []
        if s.dim % s.heads:
            problems.append(f"sam.dim {s.dim} is not divisible by sam.heads {s.heads}")
        if c.dim % c.heads:
            problems.append(f"clip.dim {c.dim} is not divisible by clip.heads {c.heads}")
        if d.dim % d.n_heads:
            problems.append(f"decoder.dim {d.dim} is not divisible by decoder.n_heads {d.n_heads}")
        if d.head_dim % 2:
            problems.append(f"decoder head_dim {d.head_dim} must be even for RoPE")
        if c.dim != s.conv_dims[-1]:
            problems.append(f"clip.dim {c.dim} must equal sam.conv_dims[-1] {s.conv_dims[-1]} "
                            "(the compressed SAM features are CLIP's patch embeddings)")
        if p.input_dim != c.dim + s.conv_dims[-1]:
            problems.append(f"projector.input_dim {p.input_dim} must be clip.dim + sam.conv_dims[-1] "
                            f"= {c.dim + s.conv_dims[-1]}")
        if p.output_dim != d.dim:
            problems.append(f"projector.output_dim {p.output_dim} must equal decoder.dim {d.dim}")
        if not 0 <= d.first_k_dense <= d.n_layers:
            problems.append(f"decoder.first_k_dense {d.first_k_dense} must be in [0, n_layers]")
        if d.first_k_dense < d.n_layers and not 1 <= d.n_activated_experts <= d.n_routed_experts:
            problems.append("decoder.n_activated_experts must be in [1, n_routed_experts]")
        if any(not 0 <= i < s.depth for i in s.global_attn_indexes):
            problems.append(f"sam.global_attn_indexes {s.global_attn_indexes} out of range for depth {s.depth}")
        if s.patch_size != 16:
            problems.append("sam.patch_size must be 16 (one visual token per 64 px assumes 16 px patches)")
        if problems:
            raise ValueError("invalid OpticalConfig: " + "; ".join(problems) + ". Fix the JSON preset.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpticalConfig:
        def build(klass, raw: dict[str, Any]):
            known = {f.name for f in dataclasses.fields(klass)}
            unknown = set(raw) - known
            if unknown:
                raise ValueError(f"unknown {klass.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
            raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
            return klass(**raw)

        unknown = set(d) - {"sam", "clip", "projector", "decoder", "name"}
        if unknown:
            raise ValueError(f"unknown OpticalConfig sections {sorted(unknown)}; "
                             "expected sam, clip, projector, decoder, name")
        return cls(
            sam=build(SamConfig, d.get("sam", {})),
            clip=build(ClipConfig, d.get("clip", {})),
            projector=build(ProjectorConfig, d.get("projector", {})),
            decoder=build(DecoderConfig, d.get("decoder", {})),
            name=d.get("name", "custom"),
        )


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str | Path) -> OpticalConfig:
    """A preset name (`small`, `tiny-debug`, `deepseek-ocr`), a JSON file, or a checkpoint directory."""
    p = Path(name_or_path)
    if p.is_dir():
        p = p / "config.json"
        if not p.is_file():
            raise FileNotFoundError(f"{name_or_path} is a directory without config.json; "
                                    "pass a checkpoint directory written by save_pretrained, or a preset name")
    elif not p.is_file():
        preset = CONFIG_DIR / f"{name_or_path}.json"
        if not preset.is_file():
            raise FileNotFoundError(f"no config file or preset named {str(name_or_path)!r}; "
                                    f"presets: {preset_names()}")
        p = preset
    raw = json.loads(p.read_text())
    if "language_config" in raw:
        raise ValueError(f"{p} is an official DeepSeek-OCR config.json; load that checkpoint with "
                         "ocr_model.weights.load_official(dir)")
    return OpticalConfig.from_dict(raw)
