"""Device time of the glyph-head readout for one batch of 128 base pages (P = 128 * 2850 cells, 17,143 classes,
D = 384), part by part, on random bf16 tensors (the values do not matter). Issue 13's read path:
    python3 scripts/gpu/head_readout_bench.py        (one H200: see docs/benchmarks.md)"""
import time

import torch

torch.manual_seed(0)
P, C, D = 128 * 2850, 17143, 384
x = torch.randn(P, D, device="cuda", dtype=torch.bfloat16)
w = torch.randn(C, D, device="cuda", dtype=torch.bfloat16) * 0.05
wp = torch.cat([w, torch.zeros(17152 - C, D, device="cuda", dtype=w.dtype)])  # classes padded to 128 * 134


def t(name, fn, n=3):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        r = fn()
    torch.cuda.synchronize()
    print(f"{name:44s} {(time.perf_counter() - t0) / n * 1e3:8.1f} ms", flush=True)
    return r


lg = t("matmul (P,D)x(D,C) bf16", lambda: x @ w.t())
t("matmul, classes padded to 17,152", lambda: x @ wp.t())
t("topk 8 bf16", lambda: lg.topk(8, dim=-1))
t("max bf16", lambda: lg.max(-1))
top = lg.max(-1).values.float()


def lse_blocks():
    out = torch.empty_like(top)
    for a in range(0, P, 32768):
        d = lg[a:a + 32768].float() - top[a:a + 32768, None]
        out[a:a + 32768] = d.clamp_(min=-80.0).exp_().sum(-1)
    return out


t("lse blockwise float (the reader's)", lse_blocks)
t("torch.logsumexp on bf16", lambda: torch.logsumexp(lg, -1))


@torch.compile
def lse_fused(lg, top):
    return (lg.float() - top[:, None]).clamp(min=-80.0).exp().sum(-1).log() + top


t("lse fused by torch.compile", lambda: lse_fused(lg, top))


@torch.compile
def topk_fused(lg):
    return lg.topk(8, dim=-1)


t("topk under torch.compile", lambda: topk_fused(lg))
