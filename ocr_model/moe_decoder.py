"""DeepSeek-MoE decoder (the official "DeepSeek3B-MoE-A570M" shape, sized by DecoderConfig).

    RMSNorm -> RoPE -> multi-head attention (MHA, not MLA) -> SwiGLU MLP | (Gate -> routed experts + shared)
    -> Block (pre-norm) -> Decoder (embed, blocks, final norm, lm_head)

Layers [0, first_k_dense) use a dense SwiGLU MLP, later layers a mixture of experts: an fp32 softmax
gate picks the top-k of n_routed_experts SwiGLU experts per token (greedy, no renormalisation), and the
shared experts are one fused SwiGLU that every token passes through.

Routed expert weights are stored stacked, [E, ...] per projection, so a batch of tokens runs as grouped
matrix multiplies; `ocr_model.weights.load_official` stacks the official per-expert tensors.

Legend: B batch, T tokens, S cache slots, D model dim, nh heads, hd head dim, E experts, k top-k,
I expert intermediate, N = B*T flattened tokens.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig

__all__ = ["RMSNorm", "rope", "Attention", "MLP", "Gate", "Experts", "MoE", "Block", "Decoder", "KVCache"]


class RMSNorm(nn.Module):
    """Statistics in fp32, result cast back to the input dtype before the weight (Llama convention)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight.to(x.dtype) * xf.to(x.dtype)


def rope(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [B,T,hd] for integer positions [B,T] (Llama `rotate_half` layout, fp32)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    freqs = positions.float()[..., None] * inv_freq  # [B,T,hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [B,T,hd]
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B,nh,T,hd]; cos/sin [B,T,hd]."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    cos, sin = cos[:, None].to(x.dtype), sin[:, None].to(x.dtype)
    return x * cos + rotated * sin


class KVCache:
    """Static, preallocated key/value buffers: one [B,nh,S,hd] pair per layer, written in place."""

    def __init__(self, cfg: DecoderConfig, batch: int, slots: int, device, dtype):
        shape = (batch, cfg.n_heads, slots, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.slots = slots


class Attention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.nh, self.hd, d = cfg.n_heads, cfg.head_dim, cfg.dim
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(self.hd, cfg.norm_eps)
            self.k_norm = RMSNorm(self.hd, cfg.norm_eps)
        else:
            self.q_norm = self.k_norm = None

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        slot: torch.Tensor | None = None,
        kv_len: int | None = None,
    ) -> torch.Tensor:
        """x [B,T,D]. mask: bool (True = attend) broadcastable to [B,nh,T,keys], or None for causal.

        With `cache`: T > 1 writes k/v into slots [0,T) and attends within the chunk (prefill);
        T == 1 writes at `slot` (a 1-element long tensor, so CUDA graphs can replay it) and attends
        over the first `kv_len` cache slots (all S if None) under `mask` (decode).
        """
        B, T, D = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)  # [B,nh,T,hd]
        k = self.k_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            ck, cv = cache
            if slot is None:
                ck[:, :, :T] = k
                cv[:, :, :T] = v
            else:
                ck.index_copy_(2, slot, k.to(ck.dtype))  # under autocast k is bf16, the cache the weights' dtype
                cv.index_copy_(2, slot, v.to(cv.dtype))
                k, v = ck[:, :, :kv_len], cv[:, :, :kv_len]  # [B,nh,S,hd] (or the first kv_len slots)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """Softmax router in fp32; greedy top-k, no renormalisation (`norm_topk_prob=false`)."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.k = cfg.n_activated_experts
        self.weight = nn.Parameter(torch.empty(cfg.n_routed_experts, cfg.dim))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """x [N,D] -> softmax probabilities [N,E] in fp32."""
        return F.linear(x.float(), self.weight.float()).softmax(dim=-1)

    def select(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return scores.topk(self.k, dim=-1)  # weights [N,k] fp32, indices [N,k]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.select(self.scores(x))


class Experts(nn.Module):
    """E SwiGLU experts stored stacked: gate_proj/up_proj [E,I,D], down_proj [E,D,I]."""

    def __init__(self, n: int, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Parameter(torch.empty(n, hidden, dim))
        self.up_proj = nn.Parameter(torch.empty(n, hidden, dim))
        self.down_proj = nn.Parameter(torch.empty(n, dim, hidden))

    def one(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e on x [n,D] (the readable path)."""
        h = F.silu(x @ self.gate_proj[e].t()) * (x @ self.up_proj[e].t())
        return h @ self.down_proj[e].t()

    def gathered(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Each token through its own k experts by gathering their weights: x [N,D], indices [N,k]
        -> [N,k,D]. Cheapest when N*k < E (decode steps); static shapes, so CUDA-graph safe."""
        g, u, d = self.gate_proj[indices], self.up_proj[indices], self.down_proj[indices]  # [N,k,I,D] ...
        h = F.silu(torch.einsum("nd,nkid->nki", x, g)) * torch.einsum("nd,nkid->nki", x, u)  # [N,k,I]
        return torch.einsum("nki,nkdi->nkd", h, d)

    def grouped(self, x: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Sort the N*k (token, expert) pairs by expert and run three grouped matmuls; static shapes,
        no host sync. x [N,D], indices/weights [N,k] -> weighted sum over k [N,D]."""
        N, k = indices.shape
        flat = indices.reshape(-1)  # [N*k]
        order = flat.argsort(stable=True)
        token = order // k  # source token of each sorted pair
        E = self.gate_proj.shape[0]
        counts = torch.zeros(E, dtype=torch.int32, device=x.device).scatter_add_(
            0, flat, torch.ones_like(flat, dtype=torch.int32))  # [E], no host sync (unlike bincount)
        offs = counts.cumsum(0).to(torch.int32)
        dt = _compute_dtype(x)  # under autocast, run the experts in the autocast dtype like nn.Linear would
        xs = x[token].to(dt)  # [N*k,D]
        gw, uw, dw = (p.to(dt) for p in (self.gate_proj, self.up_proj, self.down_proj))
        h = F.silu(_grouped_mm(xs, gw, offs)) * _grouped_mm(xs, uw, offs)  # [N*k,I]
        out = _grouped_mm(h, dw, offs)  # [N*k,D]
        out = out[order.argsort()].view(N, k, -1)  # back to (token, slot) order: a gather, no scatter-add
        return (out * weights[..., None].to(out.dtype)).sum(1).to(x.dtype)  # [N,D]


def _grouped_mm(x: torch.Tensor, w: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
    """rows of x (sorted by group, group ends `offs`) @ w[g].T. x [M,K], w [E,N,K] -> [M,N]."""
    if hasattr(torch, "_grouped_mm") and _grouped_mm_ok(x):
        return torch._grouped_mm(x, w.to(x.dtype).transpose(-1, -2), offs=offs)  # autocast skips this op
    # portable fallback: one matmul per non-empty expert (host sync on offs; not for CUDA graphs)
    parts, start = [], 0
    for e, end in enumerate(offs.tolist()):
        if end > start:
            parts.append(F.linear(x[start:end], w[e]))
        start = end
    return torch.cat(parts) if parts else x.new_zeros(0, w.shape[1])


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _grouped_mm_ok(x: torch.Tensor | torch.dtype) -> bool:
    # torch._grouped_mm needs CUDA sm90+ and bf16; on CPU the per-expert loop is faster (measured: the CPU
    # kernel gains nothing, and a host sync costs nothing there)
    if isinstance(x, torch.dtype):  # called with the compute dtype on a CUDA tensor's behalf
        return x == torch.bfloat16 and torch.cuda.get_device_capability()[0] >= 9
    if x.device.type == "cuda":
        return x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device)[0] >= 9
    return False


class MoE(nn.Module):
    """Routed experts (top-k of E) + fused shared experts, with a sequence-level balance loss."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.gate = Gate(cfg)
        self.experts = Experts(cfg.n_routed_experts, cfg.dim, cfg.moe_intermediate)
        self.shared_experts = (
            MLP(cfg.dim, cfg.n_shared_experts * cfg.moe_intermediate) if cfg.n_shared_experts > 0 else None
        )
        self.reference = False  # run the readable expert loop instead of the fast path
        self.aux_loss: torch.Tensor | None = None  # set by forward while training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        flat = x.reshape(B * T, D)  # [N,D]
        scores = self.gate.scores(flat)  # [N,E] fp32
        weights, indices = self.gate.select(scores)  # [N,k]
        few = B * T * self.gate.k < self.cfg.n_routed_experts
        if self.reference:
            y = self.routed_reference(flat, weights, indices)
        elif x.is_cuda and (few or not _grouped_mm_ok(_compute_dtype(x)) and torch.cuda.is_current_stream_capturing()):
            # decode steps, and anything captured in a CUDA graph without grouped-GEMM support: no host sync
            g = self.experts.gathered(flat, indices)
            y = (g * weights[..., None].to(g.dtype)).sum(1).to(x.dtype)
        else:
            y = self.experts.grouped(flat, indices, weights)
        if self.shared_experts is not None:
            y = y + self.shared_experts(flat)
        self.aux_loss = self.balance_loss(scores.view(B, T, -1), indices.view(B, T, -1)) if self.training else None
        return y.view(B, T, D)

    def routed_reference(self, x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The plain loop: for each expert, the tokens that chose it, weighted by their gate score."""
        y = torch.zeros_like(x)
        for e in range(self.cfg.n_routed_experts):
            token, slot = torch.where(indices == e)
            if token.numel() == 0:
                continue
            y.index_add_(0, token, self.experts.one(e, x[token]) * weights[token, slot, None].to(x.dtype))
        return y

    def balance_loss(self, scores: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """DeepSeek `seq_aux`: per sequence, sum_e f_e * P_e with f_e = load of e normalised so that uniform
        routing gives 1, P_e = mean router probability; averaged over sequences, times aux_loss_alpha."""
        B, T, E = scores.shape
        k = indices.shape[-1]
        load = torch.zeros(B, E, device=scores.device).scatter_add_(
            1, indices.reshape(B, T * k), torch.ones(B, T * k, device=scores.device)
        )  # [B,E]
        f = load / (T * k / E)
        return (f * scores.mean(dim=1)).sum(dim=1).mean() * self.cfg.aux_loss_alpha


class Block(nn.Module):
    def __init__(self, cfg: DecoderConfig, layer_id: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg.dim, cfg.dense_intermediate) if layer_id < cfg.first_k_dense else MoE(cfg)

    def forward(self, x, cos, sin, mask, cache=None, slot=None, kv_len=None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, slot, kv_len)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    """Token embeddings, blocks, final RMSNorm and an untied lm_head."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)

    def forward(
        self,
        h: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        slot: torch.Tensor | None = None,
        kv_len: int | None = None,
    ) -> torch.Tensor:
        """Input embeddings h [B,T,D], positions [B,T] -> final hidden states [B,T,D] (normed)."""
        cos, sin = rope(positions, self.cfg.head_dim, self.cfg.rope_theta)
        for i, layer in enumerate(self.layers):
            kv = (cache.k[i], cache.v[i]) if cache is not None else None
            h = layer(h, cos, sin, mask, kv, slot, kv_len)
        return self.norm(h)

    def aux_loss(self) -> torch.Tensor | None:
        losses = [m.aux_loss for m in self.modules() if isinstance(m, MoE) and m.aux_loss is not None]
        return torch.stack(losses).sum() if losses else None

    def set_reference_moe(self, on: bool) -> None:
        for m in self.modules():
            if isinstance(m, MoE):
                m.reference = on

    @torch.no_grad()
    def init_weights(self) -> None:
        std = 0.02
        nn.init.normal_(self.embed_tokens.weight, std=std)
        nn.init.normal_(self.lm_head.weight, std=std)
        # residual-branch outputs scaled down with depth (GPT-2 style) so the stream starts stable
        out_std = std / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name or name.endswith("_norm.weight"):
                nn.init.ones_(p)
            elif name.startswith(("embed_tokens", "lm_head")):
                continue
            elif name.endswith(("o_proj.weight", "down_proj.weight", "down_proj")):
                nn.init.normal_(p, std=out_std)
            else:
                nn.init.normal_(p, std=std)
