"""Checkpoints: ours (safetensors shards <= 15 MB + config.json + tokenizer.json) and the official one.

Our directory layout:
    config.json                    OpticalConfig.to_dict()
    tokenizer.json                 the `tokenizers` file
    model-00001-of-0000N.safetensors ...   each <= max_shard_bytes
    model.safetensors.index.json   {"weight_map": {key: file}, "split": {key: {"shape", "parts"}}}
A tensor larger than a shard is stored flattened in parts `key@@partI` and re-joined on load.

Official DeepSeek-OCR checkpoint: one rename table (`OFFICIAL_RENAMES`, first match wins) plus stacking
of the per-expert tensors `...mlp.experts.E.{gate,up,down}_proj.weight` into our [E, ...] parameters.
Every key is accounted for both ways; anything missing or unexpected is an error that lists it.
Weights are never unpickled: safetensors only.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import DecoderConfig, OpticalConfig, load_config
from .model import OpticalModel
from .tokenizer import Tokenizer

__all__ = ["save_pretrained", "load_pretrained", "load_official", "official_state_dict", "OFFICIAL_RENAMES",
           "build_model"]

MAX_SHARD_BYTES = 15 * 1024 * 1024
INDEX = "model.safetensors.index.json"

# official prefix -> ours; first match wins
OFFICIAL_RENAMES: list[tuple[str, str]] = [
    ("model.embed_tokens.", "decoder.embed_tokens."),
    ("model.layers.", "decoder.layers."),
    ("model.norm.", "decoder.norm."),
    ("lm_head.", "decoder.lm_head."),
    ("model.", ""),  # sam_model, vision_model, projector, image_newline, view_seperator
]
# keys some re-saves carry that hold no weights (a buffer); accepted and ignored
OFFICIAL_IGNORED = {"model.vision_model.embeddings.position_ids"}
_EXPERT = re.compile(r"^(decoder\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def _default_dtype(device: torch.device, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def build_model(cfg: OpticalConfig, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                init: bool = True) -> OpticalModel:
    """A freshly initialised model (init=True) or one with uninitialised storage, ready for load_state_dict."""
    with torch.device("meta"):
        model = OpticalModel(cfg)
    model = model.to_empty(device=device).to(dtype)
    if init:
        model.init_weights()
    return model


# ------------------------------------------------------------------------------------ our checkpoints


def save_pretrained(model: OpticalModel, tokenizer: Tokenizer | None, directory: str | Path, *,
                    dtype: torch.dtype | None = None, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """Write config.json, tokenizer.json (if given) and safetensors shards; returns the shard paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("model-*.safetensors"):
        old.unlink()
    pieces: list[tuple[str, torch.Tensor]] = []
    split: dict[str, dict] = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu", dtype or t.dtype).contiguous()
        nbytes = t.numel() * t.element_size()
        if nbytes <= max_shard_bytes:
            pieces.append((name, t))
            continue
        flat = t.reshape(-1)
        per = max_shard_bytes // t.element_size()
        parts = -(-flat.numel() // per)
        split[name] = {"shape": list(t.shape), "parts": parts}
        for i in range(parts):
            pieces.append((f"{name}@@part{i}", flat[i * per : (i + 1) * per].clone()))
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in pieces:
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    paths, weight_map = [], {}
    for i, shard in enumerate(shards):
        p = d / f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(p), metadata={"format": "pt"})
        paths.append(p)
        weight_map.update({k: p.name for k in shard})
    (d / INDEX).write_text(json.dumps({"weight_map": weight_map, "split": split}, indent=1))
    (d / "config.json").write_text(json.dumps(model.cfg.to_dict(), indent=2))
    if tokenizer is not None:
        tokenizer.save(d / "tokenizer.json")
    return paths


def load_pretrained(directory: str | Path, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> tuple[OpticalModel, Tokenizer]:
    """Load a directory written by save_pretrained. dtype defaults to float32 on CPU, bfloat16 on CUDA.
    The model is returned in eval mode."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"checkpoint directory {d} does not exist")
    for need in ("config.json", INDEX, "tokenizer.json"):
        if not (d / need).is_file():
            raise FileNotFoundError(f"{d} lacks {need}; is this a directory written by ocr_model.weights.save_pretrained?")
    cfg = load_config(d)
    index = json.loads((d / INDEX).read_text())
    files = sorted(set(index["weight_map"].values()))
    for f in files:
        if not (d / f).is_file():
            raise FileNotFoundError(f"{d} lacks shard {f} listed in {INDEX}; the checkpoint is incomplete")
    raw: dict[str, torch.Tensor] = {}
    for f in files:
        with safe_open(str(d / f), framework="pt", device="cpu") as sf:
            for k in sf.keys():
                raw[k] = sf.get_tensor(k)
    state = {k: v for k, v in raw.items() if "@@part" not in k}
    for name, info in index.get("split", {}).items():
        parts = [raw[f"{name}@@part{i}"] for i in range(info["parts"])]
        state[name] = torch.cat(parts).reshape(info["shape"])
    device = torch.device(device)
    model = _load_state(cfg, state, device, _default_dtype(device, dtype), source=str(d))
    return model, Tokenizer.from_file(d / "tokenizer.json")


def _load_state(cfg: OpticalConfig, state: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype,
                source: str) -> OpticalModel:
    with torch.device("meta"):
        model = OpticalModel(cfg)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k]))
    if missing or unexpected or bad:
        raise ValueError(_key_report(source, missing, unexpected,
                                     [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k])}" for k in bad]))
    model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in state.items()}, strict=True, assign=True)
    return model.eval()


def _key_report(source: str, missing: list[str], unexpected: list[str], bad_shapes: list[str]) -> str:
    def show(xs: list[str]) -> str:
        return ", ".join(xs[:20]) + (f", ... ({len(xs) - 20} more)" if len(xs) > 20 else "")

    parts = [f"checkpoint {source} does not match the model config:"]
    if missing:
        parts.append(f"{len(missing)} missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {show(unexpected)}")
    if bad_shapes:
        parts.append(f"{len(bad_shapes)} shape mismatches: {show(bad_shapes)}")
    parts.append("Check that the config (preset) matches the checkpoint.")
    return " ".join(parts)


# ------------------------------------------------------------------------------ official checkpoint


def _rename(official: str) -> str:
    for old, new in OFFICIAL_RENAMES:
        if official.startswith(old):
            return new + official[len(old):]
    return official  # unmatched: reported as unexpected


def official_state_dict(model: OpticalModel) -> dict[str, torch.Tensor]:
    """Our state dict under the official key names (experts unstacked): the inverse of load_official."""
    inverse = [(new, old) for old, new in OFFICIAL_RENAMES if new]
    out = {}
    for k, v in model.state_dict().items():
        off = next((old + k[len(new):] for new, old in inverse if k.startswith(new)), "model." + k)
        m = re.match(r"^(model\.layers\.\d+\.mlp\.experts)\.(gate_proj|up_proj|down_proj)$", off)
        if m:
            for e in range(v.shape[0]):
                out[f"{m.group(1)}.{e}.{m.group(2)}.weight"] = v[e]
        else:
            out[off] = v
    return out


def _check_official_config(raw: dict, dc: DecoderConfig) -> None:
    lc = raw.get("language_config", raw)
    pairs = {
        "vocab_size": dc.vocab_size, "hidden_size": dc.dim, "num_hidden_layers": dc.n_layers,
        "num_attention_heads": dc.n_heads, "intermediate_size": dc.dense_intermediate,
        "first_k_dense_replace": dc.first_k_dense, "n_routed_experts": dc.n_routed_experts,
        "num_experts_per_tok": dc.n_activated_experts, "moe_intermediate_size": dc.moe_intermediate,
        "n_shared_experts": dc.n_shared_experts,
    }
    wrong = [f"{k}={lc[k]} (config says {v})" for k, v in pairs.items() if k in lc and lc[k] != v]
    if lc.get("use_mla"):
        wrong.append("use_mla=true (only MHA checkpoints are supported)")
    if wrong:
        raise ValueError(f"official config.json disagrees with our decoder config: {'; '.join(wrong)}. "
                         "Pass config= a preset that matches the checkpoint.")


def load_official(directory: str | Path, *, config: OpticalConfig | str = "deepseek-ocr",
                  device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                  tokenizer: bool = True) -> tuple[OpticalModel, Tokenizer | None]:
    """Load the official DeepSeek-OCR checkpoint (safetensors + config.json + tokenizer files) from a local
    directory into our modules. `config` gives the sizes (the official vision sizes are not in its
    config.json); the decoder fields of config.json are checked against it. Nothing is downloaded."""
    d = Path(directory)
    cfg = load_config(config) if isinstance(config, str) else config
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"{d} lacks config.json; pass the directory holding the official checkpoint files")
    _check_official_config(json.loads((d / "config.json").read_text()), cfg.decoder)
    files = sorted(d.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {d}; the official checkpoint is model-00001-of-000001.safetensors")

    with torch.device("meta"):
        model = OpticalModel(cfg)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    device = torch.device(device)
    dtype = _default_dtype(device, dtype)
    state: dict[str, torch.Tensor] = {}
    seen_experts: dict[str, set[int]] = {}
    unexpected, bad = [], []
    for f in files:
        with safe_open(str(f), framework="pt", device="cpu") as sf:
            for key in sf.keys():
                if key in OFFICIAL_IGNORED:
                    continue
                ours = _rename(key)
                m = _EXPERT.match(ours)
                if m:
                    name, e = f"{m.group(1)}.{m.group(3)}", int(m.group(2))
                    if name not in expected or e >= expected[name][0]:
                        unexpected.append(key)
                        continue
                    t = sf.get_tensor(key)
                    if tuple(t.shape) != tuple(expected[name][1:]):
                        bad.append(f"{key}: file {tuple(t.shape)} vs model {tuple(expected[name][1:])}")
                        continue
                    if name not in state:
                        state[name] = torch.empty(expected[name], dtype=dtype, device=device)
                    state[name][e] = t.to(device=device, dtype=dtype)
                    seen_experts.setdefault(name, set()).add(e)
                elif ours in expected:
                    t = sf.get_tensor(key)
                    if tuple(t.shape) != tuple(expected[ours]):
                        bad.append(f"{key}: file {tuple(t.shape)} vs model {tuple(expected[ours])}")
                        continue
                    state[ours] = t.to(device=device, dtype=dtype)
                else:
                    unexpected.append(key)
    missing = []
    for name, shape in expected.items():
        if _is_stacked(name):
            got = seen_experts.get(name, set())
            missing += [_official_expert_key(name, e) for e in range(shape[0]) if e not in got]
        elif name not in state:
            missing.append(_official_name(name))
    if missing or unexpected or bad:
        raise ValueError(_key_report(str(d), sorted(missing), sorted(unexpected), bad))
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    tok = Tokenizer.from_official(d) if tokenizer else None
    return model, tok


def _is_stacked(name: str) -> bool:
    return bool(re.match(r"^decoder\.layers\.\d+\.mlp\.experts\.(gate_proj|up_proj|down_proj)$", name))


def _official_name(ours: str) -> str:
    for old, new in OFFICIAL_RENAMES:
        if new and ours.startswith(new):
            return old + ours[len(new):]
    return "model." + ours


def _official_expert_key(name: str, e: int) -> str:
    base, proj = name.rsplit(".", 1)
    return f"{_official_name(base)}.{e}.{proj}.weight"
