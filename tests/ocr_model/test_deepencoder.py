from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ocr_model.config import SamConfig
from ocr_model.deepencoder import SamAttention, SamBlock, get_rel_pos, interpolate_pos_grid
from ocr_model.image_process import to_gundam


def test_shapes_through_each_stage(tiny_model, tiny_cfg):
    x = torch.randn(2, 3, 512, 512)
    with torch.no_grad():
        sam = tiny_model.sam_model(x)
        assert sam.shape == (2, tiny_cfg.sam.conv_dims[-1], 8, 8)
        clip = tiny_model.vision_model(sam)
        assert clip.shape == (2, 1 + 64, tiny_cfg.clip.dim)
        grid = tiny_model.encode_grid(x)
        assert grid.shape == (2, 8, 8, tiny_cfg.decoder.dim)
        vis = tiny_model.layout_visual(grid)
    assert vis.shape == (2, 73, tiny_cfg.decoder.dim)
    # official order: row r's 8 tokens then a newline, ..., separator last
    assert torch.equal(vis[0, 8], tiny_model.image_newline)
    assert torch.equal(vis[0, 9:17], grid[0, 1])
    assert torch.equal(vis[1, -1], tiny_model.view_seperator)


@pytest.mark.parametrize("side,positions", [(512, 73), (640, 111), (1024, 273), (1280, 421), (384, 43)])
def test_token_count_per_mode(windowed_model, side, positions):
    with torch.no_grad():
        assert windowed_model.encode(torch.zeros(1, 3, side, side)).shape[1] == positions


def test_gundam_layout(windowed_model):
    g = to_gundam(Image.new("RGB", (1500, 700), "white"))
    nw, nh = g.grid
    with torch.no_grad():
        vis = windowed_model.encode_gundam(g.global_view, g.tiles, g.grid)
        tiles = windowed_model.encode_grid(g.tiles)
    assert vis.shape[1] == g.visual_tokens == 273 + (nh * 10) * (nw * 10 + 1)
    # the first stitched row is tile 0's row 0 then tile 1's row 0 ... then a newline
    assert torch.allclose(vis[0, :10], tiles[0, 0]) and torch.allclose(vis[0, 10:20], tiles[1, 0])
    assert torch.equal(vis[0, nw * 10], windowed_model.image_newline)


def test_global_layer_runs_at_other_sizes(tiny_model):
    with torch.no_grad():  # rel-pos tables and pos-embeds get interpolated; non-square too
        assert tiny_model.encode_grid(torch.randn(1, 3, 384, 640)).shape[1:3] == (6, 10)


def test_rel_pos_matches_definition():
    table = torch.randn(7, 5)
    r = get_rel_pos(4, 4, table)
    for i in range(4):
        for j in range(4):
            assert torch.equal(r[i, j], table[i - j + 3])
    assert get_rel_pos(6, 6, table).shape == (6, 6, 5)  # linearly resized to 11 entries


def _manual_attention(attn: SamAttention, x: torch.Tensor) -> torch.Tensor:
    B, H, W, C = x.shape
    nh, hd = attn.heads, C // attn.heads
    q, k, v = attn.qkv(x).reshape(B, H * W, 3, nh, hd).permute(2, 0, 3, 1, 4)
    Rh, Rw = get_rel_pos(H, H, attn.rel_pos_h), get_rel_pos(W, W, attn.rel_pos_w)
    bias = torch.zeros(B, nh, H, W, H, W)
    qg = q.reshape(B, nh, H, W, hd)
    for kh in range(H):
        for kw in range(W):
            bias[..., kh, kw] = (qg * Rh[:, kh][None, None, :, None]).sum(-1) + (qg * Rw[:, kw][None, None, None]).sum(-1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + bias.reshape(B, nh, H * W, H * W)
    out = scores.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(B, H, W, C))


def test_sdpa_attention_matches_manual():
    torch.manual_seed(0)
    attn = SamAttention(16, 2, rel_size=7)
    torch.nn.init.normal_(attn.rel_pos_h)
    torch.nn.init.normal_(attn.rel_pos_w)
    x = torch.randn(2, 4, 4, 16)
    with torch.no_grad():
        assert torch.allclose(attn(x), _manual_attention(attn, x), atol=1e-5)


@pytest.mark.parametrize("hw", [(14, 14), (9, 5)])
def test_folded_bias_gives_the_reference_attention(hw):
    """The bias folded into the dot products (a flash kernel may run) = the (N, N) table added to the scores."""
    torch.manual_seed(0)
    attn = SamAttention(64, 2, 2 * max(hw) - 1)
    with torch.no_grad():
        attn.rel_pos_h.normal_(std=0.5)
        attn.rel_pos_w.normal_(std=0.5)
        x = torch.randn(3, *hw, 64)
        ref = attn(x)
        attn.fold_bias = True
        got = attn(x)
        attn.rel_pos_w.zero_()  # the fold must carry each term: a wrong one-hot shows once the other is gone
        ref_h, attn.fold_bias = attn(x), False
        ref_h0 = attn(x)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5)
    assert torch.allclose(ref_h, ref_h0, atol=1e-5) and not torch.allclose(ref_h, ref, atol=1e-3)


def test_window_equal_to_grid_is_global():
    """Windowed and global attention are one mechanism: one window covering the grid == global."""
    cfg = SamConfig(dim=16, depth=1, heads=2, img_size=64, window_size=4, global_attn_indexes=())
    torch.manual_seed(0)
    windowed = SamBlock(cfg, window_size=4)  # rel table 7 = 2*4-1
    glob = SamBlock(cfg, window_size=0)  # rel table 2*(64/16)-1 = 7
    glob.load_state_dict(windowed.state_dict())
    x = torch.randn(1, 4, 4, 16)
    with torch.no_grad():
        assert torch.allclose(windowed(x), glob(x), atol=1e-6)
        # padding path: a 5x5 grid is padded to 8x8 and split into four windows; the top-left window
        # sees only its own 4x4 tokens, so it equals running the block on that crop alone
        x5 = torch.randn(1, 5, 5, 16)
        assert torch.allclose(windowed(x5)[:, :4, :4], windowed(x5[:, :4, :4]), atol=1e-6)


def test_pos_interpolation():
    pos = torch.randn(1, 4, 4, 8)
    assert interpolate_pos_grid(pos, 4, 4) is pos
    assert interpolate_pos_grid(pos, 6, 3).shape == (1, 6, 3, 8)
    const = torch.ones(1, 4, 4, 8)
    assert torch.allclose(interpolate_pos_grid(const, 7, 7), torch.ones(1, 7, 7, 8), atol=1e-5)


def test_input_errors(tiny_model):
    with pytest.raises(ValueError, match="multiples of 64"):
        tiny_model.encode(torch.zeros(1, 3, 500, 500))
    with pytest.raises(TypeError, match="floating point"):
        tiny_model.encode(torch.zeros(1, 3, 512, 512, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[B,3,S,S\]"):
        tiny_model.encode(torch.zeros(1, 1, 512, 512))
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny_model.encode(Image.new("L", (512, 512)))
