"""DeepEncoder: page pixels -> visual tokens on a (S/64) x (S/64) grid.

    pixels [B,3,S,S]
      -> SamEncoder: 16x16 patches, windowed/global ViT blocks, neck, two stride-2 convs   [B,C2,h,w]
      -> ClipEncoder: the conv features are its patch embeddings (+CLS, +pos), global ViT [B,1+h*w,C2]
      -> concat[CLIP out without CLS, SAM out] -> Projector (linear)                       [B,h,w,D]

Parameter names follow the official checkpoint (`sam_model.blocks.N.attn.qkv`, `sam_model.net_2`,
`vision_model.transformer.layers.N.self_attn.qkv_proj`, `projector.layers`), so loading it is a prefix strip.

Legend: B batch, H W patch grid, h w token grid (H/4), C channels, N tokens, nh heads, hd head dim.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ClipConfig, ProjectorConfig, SamConfig

__all__ = ["SamEncoder", "ClipEncoder", "Projector", "interpolate_pos_grid", "fold_attention_bias"]


def interpolate_pos_grid(pos: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bicubic (antialiased) resize of a channels-last position grid [1,H0,W0,C] to [1,h,w,C]."""
    if pos.shape[1] == h and pos.shape[2] == w:
        return pos
    x = pos.permute(0, 3, 1, 2).float()  # [1,C,H0,W0]
    x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return x.permute(0, 2, 3, 1).to(pos.dtype)  # [1,h,w,C]


# ---------------------------------------------------------------------------------------------- SAM


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative position embeddings [q_size, k_size, hd] for one axis (resized linearly if needed)."""
    max_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_dist:
        r = rel_pos.float().t().unsqueeze(0)  # [1,hd,L]
        r = F.interpolate(r, size=max_dist, mode="linear")
        rel_pos = r.squeeze(0).t().to(rel_pos.dtype)  # [max_dist,hd]
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    rel = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[rel.long()]


class SamAttention(nn.Module):
    """Multi-head attention with a decomposed (MViTv2) relative position bias, run through SDPA."""

    def __init__(self, dim: int, heads: int, rel_size: int):
        super().__init__()
        self.heads = heads
        hd = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        # rel_size = 2*window-1 for windowed blocks, 2*(img_size/16)-1 for global ones
        self.rel_pos_h = nn.Parameter(torch.zeros(rel_size, hd))
        self.rel_pos_w = nn.Parameter(torch.zeros(rel_size, hd))
        # the bias folded into the dot products (_folded_attention: a flash kernel, no (N, N) table) or the
        # readable reference that adds the table; the same scores up to rounding (tests/ocr_model/test_deepencoder.py)
        self.fold_bias = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        nh = self.heads
        qkv = self.qkv(x).reshape(B, H * W, 3, nh, C // nh).permute(2, 0, 3, 1, 4)  # [3,B,nh,N,hd]
        q, k, v = qkv.unbind(0)
        # bias[b,n, (qh,qw), (kh,kw)] = <q, Rh[qh,kh]> + <q, Rw[qw,kw]>; q is unscaled as in SAM
        Rh = get_rel_pos(H, H, self.rel_pos_h)  # [H,H,hd]
        Rw = get_rel_pos(W, W, self.rel_pos_w)  # [W,W,hd]
        r_q = q.reshape(B, nh, H, W, C // nh)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, Rh.to(q.dtype))  # [B,nh,H,W,H]
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, Rw.to(q.dtype))  # [B,nh,H,W,W]
        if self.fold_bias:
            out = _folded_attention(q, k, v, rel_h, rel_w)
        else:  # the reference: the (N, N) bias table per window and head, added to the scores
            bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(B, nh, H * W, H * W)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # [B,nh,N,hd]
        out = out.transpose(1, 2).reshape(B, H, W, C)
        return self.proj(out)


def _folded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor,
                      rel_w: torch.Tensor) -> torch.Tensor:
    """SDPA with the decomposed bias folded into the dot products, so no (N, N) table is made and a flash
    kernel can run: q.k / s + rel_h[q, kh] + rel_w[q, kw] = [q, s rel_h[q], s rel_w[q]] . [k, onehot(kh),
    onehot(kw)] / s (s = sqrt(hd)). q k v [B,nh,N,hd], rel_h [B,nh,H,W,H], rel_w [B,nh,H,W,W] -> [B,nh,N,hd]."""
    B, nh, H, W, _ = rel_w.shape
    N, hd = H * W, q.shape[-1]
    s = math.sqrt(hd)
    eye_h = torch.eye(H, dtype=k.dtype, device=k.device)
    eye_w = torch.eye(W, dtype=k.dtype, device=k.device)
    key_h = eye_h[:, None, :].expand(H, W, H).reshape(1, 1, N, H)  # key n = (kh, kw) -> onehot(kh)
    key_w = eye_w[None, :, :].expand(H, W, W).reshape(1, 1, N, W)  # -> onehot(kw)
    d = hd + H + W
    pad = (-d) % 8  # fused kernels want head dims in multiples of 8
    qf = torch.cat([q, rel_h.reshape(B, nh, N, H) * s, rel_w.reshape(B, nh, N, W) * s], dim=-1)  # [B,nh,N,d]
    kf = torch.cat([k, key_h.expand(B, nh, N, H), key_w.expand(B, nh, N, W)], dim=-1)  # [B,nh,N,d]
    qf, kf, vf = F.pad(qf, (0, pad)), F.pad(kf, (0, pad)), F.pad(v, (0, d + pad - hd))  # [B,nh,N,d+pad]
    return F.scaled_dot_product_attention(qf, kf, vf, scale=1.0 / s)[..., :hd]  # [B,nh,N,hd]


def fold_attention_bias(module: nn.Module, on: bool = True) -> None:
    """Switch every SamAttention in `module` to the folded bias (on) or the reference table (off)."""
    for m in module.modules():
        if isinstance(m, SamAttention):
            m.fold_bias = bool(on)


class SamMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.gelu(self.lin1(x)))


class SamBlock(nn.Module):
    """Pre-norm ViT block; window_size > 0 attends inside non-overlapping windows, 0 attends globally."""

    def __init__(self, cfg: SamConfig, window_size: int):
        super().__init__()
        self.window_size = window_size
        rel_size = 2 * (window_size if window_size > 0 else cfg.img_size // cfg.patch_size) - 1
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.attn = SamAttention(cfg.dim, cfg.heads, rel_size)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.mlp = SamMlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        y = self.norm1(x)
        ws = self.window_size
        if ws > 0:
            # pad to a multiple of the window, fold windows into the batch, attend, unfold, crop
            ph, pw = (ws - H % ws) % ws, (ws - W % ws) % ws
            y = F.pad(y, (0, 0, 0, pw, 0, ph))  # [B,Hp,Wp,C]
            Hp, Wp = H + ph, W + pw
            y = y.reshape(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
            y = y.reshape(-1, ws, ws, C)  # [B*nW,ws,ws,C]
            y = self.attn(y)
            y = y.reshape(B, Hp // ws, Wp // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
            y = y.reshape(B, Hp, Wp, C)[:, :H, :W]  # [B,H,W,C]
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # [B,H,W,C] channels-last


class SamEncoder(nn.Module):
    """SAM ViT + neck + the 16x compressor. pixels [B,3,S,S] -> features [B,C2,S/64,S/64]."""

    def __init__(self, cfg: SamConfig):
        super().__init__()
        self.cfg = cfg
        grid = cfg.img_size // cfg.patch_size
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, cfg.dim))
        self.blocks = nn.ModuleList(
            SamBlock(cfg, 0 if i in cfg.global_attn_indexes else cfg.window_size) for i in range(cfg.depth)
        )
        n = cfg.neck_dim
        self.neck = nn.Sequential(
            nn.Conv2d(cfg.dim, n, kernel_size=1, bias=False),
            LayerNorm2d(n, cfg.eps),
            nn.Conv2d(n, n, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(n, cfg.eps),
        )
        c1, c2 = cfg.conv_dims
        self.net_2 = nn.Conv2d(n, c1, kernel_size=3, stride=2, padding=1, bias=False)
        self.net_3 = nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1, bias=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels)  # [B,H,W,C]
        x = x + interpolate_pos_grid(self.pos_embed, x.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        x = self.neck(x.permute(0, 3, 1, 2))  # [B,neck,H,W], the one switch to NCHW
        return self.net_3(self.net_2(x))  # [B,C2,H/4,W/4]


# --------------------------------------------------------------------------------------------- CLIP


class ClipEmbeddings(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.pos_grid = cfg.pos_grid
        self.class_embedding = nn.Parameter(torch.zeros(cfg.dim))
        if cfg.unused_patch_embedding:
            self.patch_embedding = nn.Conv2d(3, cfg.dim, kernel_size=14, stride=14, bias=False)
        self.position_embedding = nn.Embedding(cfg.pos_grid**2 + 1, cfg.dim)

    def forward(self, patches: torch.Tensor, h: int, w: int) -> torch.Tensor:
        B, N, C = patches.shape
        cls = self.class_embedding.to(patches.dtype).expand(B, 1, C)
        x = torch.cat([cls, patches], dim=1)  # [B,1+N,C]
        pos = self.position_embedding.weight  # [1+g*g,C]
        grid = interpolate_pos_grid(pos[1:].reshape(1, self.pos_grid, self.pos_grid, C), h, w)
        pos = torch.cat([pos[:1], grid.reshape(h * w, C)], dim=0)  # [1+N,C]
        return x + pos.to(x.dtype)


class ClipAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv_proj(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(*qkv.unbind(0))  # [B,nh,N,hd]
        return self.out_proj(out.transpose(1, 2).reshape(B, N, C))


class ClipMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        return self.fc2(x * torch.sigmoid(1.702 * x))  # quick_gelu


class ClipLayer(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.self_attn = ClipAttention(cfg.dim, cfg.heads)
        self.layer_norm2 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.mlp = ClipMlp(cfg.dim, cfg.mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipTransformer(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.layers = nn.ModuleList(ClipLayer(cfg) for _ in range(cfg.depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ClipEncoder(nn.Module):
    """Global ViT over the compressed SAM grid. features [B,C,h,w] -> [B,1+h*w,C] (CLS first).

    No post-layernorm: the official model uses the last layer's output directly.
    """

    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.embeddings = ClipEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.dim, eps=cfg.eps)  # sic, the official name
        self.transformer = ClipTransformer(cfg)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        B, C, h, w = features.shape
        x = self.embeddings(features.flatten(2).transpose(1, 2), h, w)  # [B,1+h*w,C]
        return self.transformer(self.pre_layrnorm(x))


class Projector(nn.Module):
    """concat[CLIP, SAM] features -> decoder width. A single linear layer, as `projector_type=linear`."""

    def __init__(self, cfg: ProjectorConfig):
        super().__init__()
        self.layers = nn.Linear(cfg.input_dim, cfg.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _init_vit_(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal linear/conv weights, zero biases, unit norms; pos/rel-pos small normals."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, LayerNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, SamAttention):
            nn.init.trunc_normal_(m.rel_pos_h, std=std)
            nn.init.trunc_normal_(m.rel_pos_w, std=std)
    for name, p in module.named_parameters(recurse=False):
        nn.init.trunc_normal_(p, std=std)
    if isinstance(module, SamEncoder):
        # conv compressor: fan-in scaled so the 16x stage starts near unit variance
        for conv in (module.net_2, module.net_3):
            nn.init.normal_(conv.weight, std=1.0 / math.sqrt(conv.weight[0].numel()))
    if isinstance(module, ClipEncoder):
        nn.init.normal_(module.embeddings.class_embedding, std=std)
