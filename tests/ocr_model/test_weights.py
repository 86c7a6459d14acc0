from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import save_file

from ocr_model.tokenizer import train_tokenizer
from ocr_model.weights import load_official, load_pretrained, official_state_dict, save_pretrained


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["hello world, the optical memory", "page text\n"] * 10, vocab_size=300)


@pytest.fixture(scope="module")
def pixels():
    torch.manual_seed(5)
    return torch.randn(1, 3, 512, 512)


def _outputs(model, pixels):
    with torch.no_grad():
        vis = model.encode(pixels)
        return vis, model(torch.tensor([[5, 6, 7]]), vis).logits


def test_save_load_round_trip(tiny_model, tok, pixels, tmp_path):
    # 64 KB shards force many files and split tensors (the pos-embed is 128 KB)
    paths = save_pretrained(tiny_model, tok, tmp_path, max_shard_bytes=64 * 1024)
    assert len(paths) > 3 and all(p.stat().st_size <= 64 * 1024 + 8192 for p in paths)  # + safetensors header
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert "sam_model.pos_embed" in index["split"]
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
    model, tok2 = load_pretrained(tmp_path)
    for a, b in zip(_outputs(tiny_model, pixels), _outputs(model, pixels)):
        assert torch.equal(a, b)
    assert tok2.encode("hello") == tok.encode("hello")
    bf, _ = load_pretrained(tmp_path, dtype=torch.bfloat16)
    assert bf.dtype == torch.bfloat16


def test_load_errors(tiny_model, tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(tmp_path / "nope")
    save_pretrained(tiny_model, tok, tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_pretrained(tmp_path)
    save_pretrained(tiny_model, tok, tmp_path)
    next(tmp_path.glob("model-*.safetensors")).unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_pretrained(tmp_path)


def _official_keys(cfg) -> set[str]:
    """The official key families of deepseek-ocr.md section 3, written out independently of weights.py."""
    s, c, d = cfg.sam, cfg.clip, cfg.decoder
    keys = {"model.sam_model.patch_embed.proj.weight", "model.sam_model.patch_embed.proj.bias",
            "model.sam_model.pos_embed", "model.sam_model.neck.0.weight", "model.sam_model.neck.1.weight",
            "model.sam_model.neck.1.bias", "model.sam_model.neck.2.weight", "model.sam_model.neck.3.weight",
            "model.sam_model.neck.3.bias", "model.sam_model.net_2.weight", "model.sam_model.net_3.weight",
            "model.vision_model.embeddings.class_embedding", "model.vision_model.embeddings.patch_embedding.weight",
            "model.vision_model.embeddings.position_embedding.weight", "model.vision_model.pre_layrnorm.weight",
            "model.vision_model.pre_layrnorm.bias", "model.projector.layers.weight", "model.projector.layers.bias",
            "model.image_newline", "model.view_seperator", "model.embed_tokens.weight", "lm_head.weight",
            "model.norm.weight"}
    for i in range(s.depth):
        p = f"model.sam_model.blocks.{i}."
        keys |= {p + k for k in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.qkv.weight",
                                 "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "attn.rel_pos_h",
                                 "attn.rel_pos_w", "mlp.lin1.weight", "mlp.lin1.bias", "mlp.lin2.weight",
                                 "mlp.lin2.bias")}
    for i in range(c.depth):
        p = f"model.vision_model.transformer.layers.{i}."
        keys |= {p + k + s for k in ("layer_norm1", "layer_norm2", "self_attn.qkv_proj", "self_attn.out_proj",
                                     "mlp.fc1", "mlp.fc2") for s in (".weight", ".bias")}
    for i in range(d.n_layers):
        p = f"model.layers.{i}."
        keys |= {p + k for k in ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                                 "self_attn.o_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight")}
        if i < d.first_k_dense:
            keys |= {p + f"mlp.{m}_proj.weight" for m in ("gate", "up", "down")}
        else:
            keys |= {p + "mlp.gate.weight"} | {p + f"mlp.shared_experts.{m}_proj.weight" for m in ("gate", "up", "down")}
            keys |= {p + f"mlp.experts.{e}.{m}_proj.weight" for e in range(d.n_routed_experts) for m in ("gate", "up", "down")}
    return keys


def _write_official(model, tok, directory, drop=(), extra=None):
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in official_state_dict(model).items() if k not in drop}
    sd.update(extra or {})
    save_file(sd, str(directory / "model-00001-of-000001.safetensors"))
    d = model.cfg.decoder
    lang = {"vocab_size": d.vocab_size, "hidden_size": d.dim, "num_hidden_layers": d.n_layers,
            "num_attention_heads": d.n_heads, "intermediate_size": d.dense_intermediate,
            "first_k_dense_replace": d.first_k_dense, "n_routed_experts": d.n_routed_experts,
            "num_experts_per_tok": d.n_activated_experts, "moe_intermediate_size": d.moe_intermediate,
            "n_shared_experts": d.n_shared_experts, "use_mla": False}
    (directory / "config.json").write_text(json.dumps({"model_type": "deepseek_vl_v2", "language_config": lang}))
    tok.save(directory / "tokenizer.json")


def test_official_key_names(tiny_model, tiny_cfg):
    assert set(official_state_dict(tiny_model)) == _official_keys(tiny_cfg)


def test_load_official_synthetic(tiny_model, tiny_cfg, tok, pixels, tmp_path):
    _write_official(tiny_model, tok, tmp_path, extra={"model.vision_model.embeddings.position_ids":
                                                      torch.arange(17)[None]})
    model, tok2 = load_official(tmp_path, config=tiny_cfg)
    assert model.dtype == torch.float32 and tok2.image_id == tok.image_id
    ref = copy.deepcopy(tiny_model).to(torch.bfloat16).float()  # the file holds bf16 weights
    for a, b in zip(_outputs(ref, pixels), _outputs(model, pixels)):
        assert torch.equal(a, b)
    expert = model.decoder.layers[1].mlp.experts.up_proj
    src = official_state_dict(tiny_model)["model.layers.1.mlp.experts.3.up_proj.weight"]
    assert torch.equal(expert[3], src.bfloat16().float())


def test_load_official_reports_keys(tiny_model, tiny_cfg, tok, tmp_path):
    _write_official(tiny_model, tok, tmp_path, drop={"model.layers.2.mlp.experts.1.down_proj.weight",
                                                     "model.view_seperator"},
                    extra={"model.bogus.weight": torch.zeros(2)})
    with pytest.raises(ValueError) as e:
        load_official(tmp_path, config=tiny_cfg)
    msg = str(e.value)
    assert "2 missing keys" in msg and "model.layers.2.mlp.experts.1.down_proj.weight" in msg
    assert "model.view_seperator" in msg and "1 unexpected keys: model.bogus.weight" in msg


def test_load_official_config_mismatch(tiny_model, tiny_cfg, tok, tmp_path):
    _write_official(tiny_model, tok, tmp_path)
    with pytest.raises(ValueError, match="hidden_size"):
        load_official(tmp_path)  # the deepseek-ocr preset does not fit a tiny checkpoint
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_official(tmp_path / "missing", config=tiny_cfg)
