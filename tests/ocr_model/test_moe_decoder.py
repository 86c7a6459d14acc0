from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from ocr_model.config import DecoderConfig
from ocr_model.moe_decoder import MoE, Attention, Decoder, RMSNorm, rope

CFG = DecoderConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, dense_intermediate=48, first_k_dense=1,
                    n_routed_experts=6, n_activated_experts=2, moe_intermediate=16, n_shared_experts=2,
                    max_positions=128)


def _decoder(cfg=CFG, seed=0) -> Decoder:
    torch.manual_seed(seed)
    d = Decoder(cfg)
    d.init_weights()
    return d


def test_gate_returns_fp32_topk():
    moe = _decoder().layers[1].mlp
    x = torch.randn(10, 32).bfloat16()
    weights, indices = moe.gate(x)
    assert weights.dtype == torch.float32 and weights.shape == indices.shape == (10, 2)
    probs = F.linear(x.float(), moe.gate.weight.float()).softmax(-1)
    assert torch.allclose(weights, probs.gather(1, indices))  # no renormalisation
    assert (indices[:, 0] == probs.argmax(-1)).all()


@pytest.mark.parametrize("tokens", [1, 2, 7, 50])
def test_moe_fast_paths_match_reference(tokens):
    moe = _decoder().layers[1].mlp
    x = torch.randn(1, tokens, 32, requires_grad=True)
    moe.reference = True
    ref = moe(x)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    moe.reference = False
    fast = moe(x)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), x)
    assert torch.allclose(ref, fast, atol=1e-6) and torch.allclose(g_ref, g_fast, atol=1e-5)
    flat = x.detach().reshape(-1, 32)
    w, idx = moe.gate(flat)
    gathered = (moe.experts.gathered(flat, idx) * w[..., None]).sum(1) + moe.shared_experts(flat)
    grouped = moe.experts.grouped(flat, idx, w) + moe.shared_experts(flat)
    assert torch.allclose(gathered, ref.detach().reshape(-1, 32), atol=1e-6)
    assert torch.allclose(grouped, ref.detach().reshape(-1, 32), atol=1e-6)


def test_moe_reference_is_the_definition():
    """sum_k w_k * expert_{i_k}(x) + shared(x), token by token."""
    moe = _decoder().layers[1].mlp
    x = torch.randn(5, 32)
    w, idx = moe.gate(x)
    out = moe(x[None])[0]
    for t in range(5):
        want = moe.shared_experts(x[t])
        for j in range(2):
            e = idx[t, j].item()
            h = F.silu(x[t] @ moe.experts.gate_proj[e].t()) * (x[t] @ moe.experts.up_proj[e].t())
            want = want + w[t, j] * (h @ moe.experts.down_proj[e].t())
        assert torch.allclose(out[t], want, atol=1e-6)


def test_balance_loss():
    moe = _decoder().layers[1].mlp
    E, k = 6, 2
    uniform = torch.full((1, 6, E), 1 / E)
    spread = torch.tensor([[[0, 1], [2, 3], [4, 5], [0, 1], [2, 3], [4, 5]]])
    assert moe.balance_loss(uniform, spread).item() == pytest.approx(CFG.aux_loss_alpha)
    collapsed_scores = torch.zeros(1, 6, E)
    collapsed_scores[..., :2] = 0.5
    collapsed = torch.tensor([[[0, 1]] * 6])
    assert moe.balance_loss(collapsed_scores, collapsed).item() == pytest.approx(3 * CFG.aux_loss_alpha)
    moe.train()
    moe(torch.randn(2, 4, 32))
    assert moe.aux_loss is not None and moe.aux_loss.requires_grad
    moe.eval()
    moe(torch.randn(2, 4, 32))
    assert moe.aux_loss is None


def test_rmsnorm_stats_in_fp32():
    n = RMSNorm(8, 1e-6)
    x = (torch.randn(4, 8) * 300).bfloat16()
    y = n(x)
    assert y.dtype == torch.bfloat16
    xf = x.float()
    want = xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.allclose(y.float(), want, atol=2e-2)


def test_rope_relative():
    """<rope(q, m), rope(k, n)> depends on m - n only."""
    from ocr_model.moe_decoder import apply_rope
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def dot(m, n):
        cq, sq = rope(torch.tensor([[m]]), 16, 10000.0)
        ck, sk = rope(torch.tensor([[n]]), 16, 10000.0)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    assert torch.allclose(dot(5, 3), dot(12, 10), atol=1e-5)
    assert not torch.allclose(dot(5, 3), dot(5, 4), atol=1e-3)


def test_attention_sdpa_matches_manual():
    torch.manual_seed(0)
    attn = Attention(CFG)
    x = torch.randn(2, 7, 32)
    cos, sin = rope(torch.arange(7).expand(2, 7), 8, 10000.0)
    out = attn(x, cos, sin, None)
    from ocr_model.moe_decoder import apply_rope
    q = apply_rope(attn.q_proj(x).view(2, 7, 4, 8).transpose(1, 2), cos, sin)
    k = apply_rope(attn.k_proj(x).view(2, 7, 4, 8).transpose(1, 2), cos, sin)
    v = attn.v_proj(x).view(2, 7, 4, 8).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(8) + torch.full((7, 7), float("-inf")).triu(1)
    want = attn.o_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(2, 7, 32))
    assert torch.allclose(out, want, atol=1e-5)


def test_qk_norm_option():
    cfg = dataclasses.replace(CFG, qk_norm=True)
    d = _decoder(cfg)
    assert d.layers[0].self_attn.q_norm is not None
    h = d(torch.randn(1, 5, 32), torch.arange(5)[None])
    assert h.shape == (1, 5, 32) and torch.isfinite(h).all()


def test_dense_then_moe_layers():
    d = _decoder()
    assert not isinstance(d.layers[0].mlp, MoE) and isinstance(d.layers[1].mlp, MoE)
    assert d.layers[1].mlp.shared_experts.gate_proj.out_features == 2 * 16
