"""ocr_model.glyph_readout: the reference path against plain torch, the fused kernel against the reference
(under Triton's CPU interpreter in a subprocess, and on a GPU when there is one)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ocr_model import glyph_readout as gr

ROOT = Path(__file__).resolve().parents[2]


def _case(P=300, C=5000, E=64, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(P, E, generator=g)
    w = torch.randn(C, E, generator=g) * 0.3
    b = torch.randn(C, generator=g)
    f[7] = 0.0  # a cell whose logits are the bias alone
    b[1000:1300] = 9.0  # ... and where 300 classes tie for the top: more than CAP candidates, read again
    f[8] = 0.0
    return f.to(dtype), w.to(dtype), b


def test_padded_adds_silent_classes():
    w, b = torch.randn(200, 8), torch.randn(200)
    pw, pb = gr.padded(w, b)
    assert pw.shape == (256, 8) and pb.shape == (256,)
    assert torch.equal(pw[:200], w) and (pw[200:] == 0).all() and torch.isinf(pb[200:]).all() and torch.equal(pb[:200], b)
    x = torch.randn(5, 8)
    assert torch.allclose(torch.logsumexp(x @ pw.t() + pb, -1), torch.logsumexp(x @ w.t() + b, -1))


def test_reference_is_torch_topk_and_logsumexp():
    f, w, b = _case()
    v, i, lse = gr.top_classes(f, w, b, 8, fused=False)
    logits = f @ w.t() + b
    tv, ti = logits.topk(8, dim=-1)
    assert torch.equal(i[:7], ti[:7]) and torch.allclose(v, tv)
    assert torch.allclose(lse, torch.logsumexp(logits, -1), atol=1e-5)
    cand = torch.randint(0, 5000, (300, 12))
    assert torch.allclose(gr.candidate_logits(f, w, b, cand, step=64), logits.gather(1, cand), atol=1e-5)


def test_fused_needs_a_device_or_the_interpreter():
    if os.environ.get("TRITON_INTERPRET") != "1":
        assert not gr.fused_available("cpu")


_SCRIPT = """
import json, torch, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from test_glyph_readout import _case
from ocr_model import glyph_readout as gr
out = {{}}
for name, (P, C) in {{"odd": (300, 5000), "one tile": (100, 2945)}}.items():
    f, w, b = _case(P, C)
    v, i, lse = gr.top_classes(f, w, b, 8, fused=True)
    rv, ri, rl = gr.top_classes(f, w, b, 8, fused=False)
    out[name] = dict(v=float((v - rv).abs().max()), lse=float((lse - rl).abs().max()),
                     i_untied=float((i[9:] == ri[9:]).float().mean()), tied=float(v[7:9].max() - 9.0 - f[7:9].abs().max()))
    # again=R: nothing waited for; the flat cells (the 300 biased classes make most cells flat) read again
    # among the R with the most candidates
    va, ia, la, n = gr.top_classes(f, w, b, 8, fused=True, again=P)
    out[name].update(again_v=float((va - v).abs().max()), again_i=bool(torch.equal(ia[9:], i[9:])),
                     again_lse=bool(torch.equal(la, lse)), flat=int(n),
                     short=int(gr.top_classes(f, w, b, 8, fused=True, again=1)[3]))
print(json.dumps(out))
"""


def test_fused_kernel_matches_the_reference_under_the_interpreter():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    code = _SCRIPT.format(root=str(ROOT), tests=str(Path(__file__).parent))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for name, got in json.loads(r.stdout.strip().splitlines()[-1]).items():
        assert got["v"] < 1e-4, (name, got)  # values: the same top k (row 8 ties: any 8 of the 300 tied)
        assert got["i_untied"] == 1.0, (name, got)
        assert got["lse"] < 1e-4, (name, got)
        assert abs(got["tied"]) < 1e-6, (name, got)  # more than CAP candidates: read again, exactly
        # the no-wait read-again: the same readout while the budget holds every flat cell, and the count says
        # when it does not (the reader then reads the batch again)
        assert got["flat"] == got["short"] >= 2 and got["again_v"] < 1e-6 and got["again_i"] and got["again_lse"]


def test_again_on_the_reference_path_counts_nothing():
    f, w, b = _case()
    v, i, lse, n = gr.top_classes(f, w, b, 8, fused=False, again=4)
    rv, ri, rl = gr.top_classes(f, w, b, 8, fused=False)
    assert int(n) == 0 and torch.equal(v, rv) and torch.equal(i, ri) and torch.equal(lse, rl)


def test_fused_kernel_lists_no_class_far_below_the_best_under_the_interpreter():
    pytest.importorskip("triton")
    code = """
import json, sys, torch
sys.path.insert(0, {root!r})
from ocr_model import glyph_readout as gr
g = torch.Generator().manual_seed(1)
f, w, b = torch.randn(200, 64, generator=g), torch.randn(4000, 64, generator=g) * 0.1, torch.zeros(4000)
b[17] = 30.0  # one class 30 nats above the rest in every cell: the others are past MARGIN
b[3000] = 26.0  # ... and one 4 nats below it: still listed
v, i, lse = gr.top_classes(f, w, b, 8, fused=True)
print(json.dumps(dict(first=i[:, 0].tolist(), second=i[:, 1].tolist(), rest_inf=bool(torch.isinf(v[:, 2:]).all()),
                      rest_best=bool((i[:, 2:] == 17).all()),
                      lse=float((lse - torch.logsumexp(f @ w.t() + b, -1)).abs().max()))))
""".format(root=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TRITON_INTERPRET="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(got["first"]) == {17} and set(got["second"]) == {3000}
    assert got["rest_inf"] and got["rest_best"] and got["lse"] < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (and Triton)")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_fused_kernel_on_the_gpu(dtype):
    pytest.importorskip("triton")
    f, w, b = _case(P=20000, C=17143, dtype=dtype)
    f, w, b = f.cuda(), w.cuda(), b.cuda()
    w, b = gr.padded(w, b)
    v, i, lse = gr.top_classes(f, w, b, 8, fused=True)
    rv, ri, rl = gr.top_classes(f, w, b, 8, fused=False)
    exact = torch.addmm(b, f.float(), w.float().t())  # float32 logits of the same (rounded) inputs
    ev, ei = exact.topk(8, dim=-1)
    assert (v - ev).abs().max() < 1e-3  # random logits: every top-8 class lies within MARGIN of the best
    assert (i[9:] == ei[9:]).float().mean() > 0.999  # near-ties may swap places between float orders
    assert torch.allclose(v[7:9], ev[7:9], atol=1e-4) and (lse - torch.logsumexp(exact, -1)).abs().max() < 1e-3


def test_cells_read_again_in_steps_are_read_as_in_one(monkeypatch):
    """The float32 re-read of flat cells (_exact_top) goes AGAIN_STEP cells at a time: the same top k."""
    f, w, b = _case()
    rows = torch.tensor([0, 7, 8, 42, 299, 3, 150])
    monkeypatch.setattr(gr, "AGAIN_STEP", 3)
    v, i = gr._exact_top(f, rows, w, b, 8)
    rv, ri = torch.addmm(b[None, :], f[rows], w.t()).topk(8, dim=-1)
    # the same values up to the matrix product's rounding (it may block n rows differently), the same classes
    assert torch.allclose(v, rv, atol=1e-5) and torch.equal(i[[0, 3, 4, 5, 6]], ri[[0, 3, 4, 5, 6]])  # 7, 8: ties


def test_halves_add_up_to_float32_within_bf16_squared():
    # the fused kernel's float32 dots: x = hi + lo, both bf16 values, to ~2^-17 of |x|; on a CPU (the
    # interpreter) held in float32
    x = torch.randn(4096, generator=torch.Generator().manual_seed(2)) * torch.logspace(-3, 3, 4096)
    hi, lo = gr._halves(x)
    assert hi.dtype == lo.dtype == torch.float32
    assert torch.equal(hi, hi.to(torch.bfloat16).float()) and torch.equal(lo, lo.to(torch.bfloat16).float())
    assert ((hi + lo - x).abs() <= x.abs() * 2.0 ** -16).all()
    assert ((hi - x).abs() > x.abs() * 2.0 ** -12).any()  # hi alone is bf16: coarse
