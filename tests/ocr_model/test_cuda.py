"""CUDA-only checks (skipped on CPU): the bf16 grouped-GEMM MoE, autocast training, torch.compile, and the
CUDA-graph decode step against eager decoding."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from ocr_model.config import load_config
from ocr_model.weights import build_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def cuda_model():
    torch.manual_seed(0)
    return build_model(load_config("tiny-debug"), device="cuda").eval()


def test_moe_grouped_bf16_matches_reference(cuda_model):
    moe = cuda_model.decoder.layers[1].mlp
    x = torch.randn(4, 64, 48, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        moe.reference = True
        ref = moe(x).float()
        moe.reference = False
        fast = moe(x).float()
    assert torch.allclose(ref, fast, atol=2e-2, rtol=2e-2), (ref - fast).abs().max()


def test_autocast_train_step_and_compile():
    torch.manual_seed(0)
    model = build_model(load_config("tiny-debug"), device="cuda").train()
    px = torch.randn(2, 3, 512, 512, device="cuda")
    ids = torch.randint(4, 320, (2, 16), device="cuda")
    compiled = torch.compile(model)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager = model(ids, model.encode(px), labels=ids)
        out = compiled(ids, model.encode(px), labels=ids)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert torch.allclose(out.loss, eager.loss, atol=5e-2)
    (out.loss + out.aux_loss).backward()
    assert model.decoder.layers[1].mlp.experts.gate_proj.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch", [1, 5])
def test_cuda_graph_decode_matches_eager(dtype, batch):
    torch.manual_seed(0)
    model = build_model(load_config("tiny-debug"), device="cuda", dtype=dtype).eval()
    with torch.no_grad():
        vis = model.encode(torch.randn(batch, 3, 512, 512, device="cuda"))
    rows = [vis[i, : 73 - 3 * i] for i in range(batch)]  # ragged -> left padding
    kw = dict(max_new_tokens=40, no_repeat_ngram=3, ngram_window=20)
    eager = model.generate(rows, cuda_graph=False, **kw)
    graph = model.generate(rows, cuda_graph=True, **kw)
    again = model.generate(rows, cuda_graph=True, **kw)  # the cached graph is reused
    for e, g, a in zip(eager, graph, again):
        assert e.token_ids == g.token_ids == a.token_ids and e.eos == g.eos
        tol = 1e-3 if dtype == torch.float32 else 5e-2
        assert torch.allclose(torch.tensor(e.logprobs), torch.tensor(g.logprobs), atol=tol)
