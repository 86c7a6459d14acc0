"""The glyph readout: slot features -> each cell's top-k classes and log-sum-exp, without the (cells, classes) table.

    top_classes(f, weight, bias, k)      (P, E) slot features, a classifier (C, E) + (C,) -> (values (P, k) float32,
                                         classes (P, k) int64, log-sum-exp (P,) float32): each row's k largest
                                         logits, sorted, and the log of the softmax's denominator
    candidate_logits(f, weight, bias, c) the logits of given classes c (P, M) only (the views' combination)
    padded(weight, bias)                 the classifier with its classes padded to a multiple of 128 (weight 0,
                                         bias -inf: never chosen, nothing in a log-sum-exp)
    block_topk(logits, k)                torch.topk through block maxima (exact)
    fused_available(device)              whether top_classes runs the fused kernel there

Two paths, the same readout:

    reference  (CPU, or no Triton)  the logits table (P, C) in the features' dtype, torch.topk (block_topk on a
               GPU) and a blockwise float32 log-sum-exp. At 128 base pages that table is 364,800 x 17,152: 12.5
               GB of bf16 written and read three times, most of a read's device time (docs/benchmarks.md).
    fused      (CUDA with Triton)  two Triton kernels over tiles of BP cells x 128 classes, the logits made in
               registers by a tensor-core dot (float32 accumulation) and never stored:
                 pass 1  an online log-sum-exp per cell (exp2 of the logits less the running max), the max of
                         every block of 128 classes (P, C/128), and the cell's threshold t: the k-th largest
                         block max (an insertion network over the blocks), or MARGIN = 12 nats below the cell's
                         best logit where that is higher. The k blocks with the largest maxima hold k distinct
                         classes >= their k-th max, so every one of the k largest logits is >= it;
                 pass 2  the logits made again, only in blocks whose max reaches some cell's t, and every logit
                         >= t kept with its class (at most CAP = 64 per cell); torch.topk over those.
               So the fused top-k is torch.topk's, except that a class more than MARGIN below the cell's best
               (probability < 6.2e-6) is never listed: such places read -inf with the cell's best class again
               (a caller scoring candidates counts it once). A cell with more than CAP classes >= t (a flat
               distribution) is read again in float32 by a plain matrix product. Pass 1 skips the exp of a
               block when every cell of the tile has it more than CUT = 24 nats below its running max (it would
               add < 17,152 * e^-24 ~ 6.5e-7 of the sum, under the dots' own rounding).
               The kernels handle k <= 8. Tiles of 64 cells on 4 warps.

The kernel reads bf16 features with bf16 dots (float32 accumulation). float32 features (the reader keeps its
heads in float32) are split into bf16 halves, hi + lo, as are the weights, and each logit is three bf16 dots,
f w + f wl + fl w: 2.2x faster than three tf32 dots, within 3.4e-4 of the float32 log-sum-exp and with the same
top-1 class on all 364,800 cells of 128 tiny doc pages (scripts/gpu/readout_tune.py, docs/benchmarks.md).
MARGIN 12 rather than 25 lists fewer far-off classes: pass 2 visits fewer blocks (3.8 vs 5.8 ms at 128 tiny
pages) and fewer cells are flat (3 vs 64), the same top-1 everywhere. A caller that scores the candidates
exactly (the reader: candidate_logits) is then exact in them and off by the log-sum-exp's error only.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CAP", "block_topk", "candidate_logits", "fused_available", "padded", "top_classes"]

BLOCK_C = 128  # classes per tile (and per block of the block maxima)
CAP = 64  # candidates kept per cell by pass 2
AGAIN_STEP = 8192  # cells read again per float32 matrix product (8,192 x 17,152 logits: 562 MB)
CUT = 24.0  # nats below a cell's running max under which a block's exps are skipped (pass 1)
MARGIN = 12.0  # nats below a cell's best logit under which no class is a candidate (p < 6.2e-6)
LOG2E = 1.4426950408889634


def padded(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, E) weight and (C,) bias -> the same with C padded up to a multiple of 128: rows of weight 0 and bias
    -inf. A matrix product over 17,152 classes runs ~6x faster on an H200 than over 17,143."""
    C, E = weight.shape
    n = -(-C // BLOCK_C) * BLOCK_C
    if n == C:
        return weight, bias
    w = weight.new_zeros(n, E)
    b = bias.new_full((n,), float("-inf"))
    w[:C], b[:C] = weight, bias
    return w, b


def block_topk(logits: torch.Tensor, k: int, block: int = BLOCK_C) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk(logits, k) of (P, C) logits, C a multiple of `block` and > k * block, in two small steps:
    the k blocks of `block` classes with the largest maxima hold every one of the k largest logits (a block
    holding one has a max at least that large), so each row's top k lie among those k * block candidates."""
    P, C = logits.shape
    blocks = logits.view(P, C // block, block)
    _, bi = blocks.amax(-1).topk(k, dim=-1)  # (P, k) the blocks to look in
    cand = blocks.gather(1, bi.unsqueeze(-1).expand(P, k, block)).reshape(P, k * block)  # (P, k*block)
    v, j = cand.topk(k, dim=-1)  # (P, k), sorted
    return v, bi.gather(1, j // block) * block + j % block


def candidate_logits(f: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cand: torch.Tensor,
                     step: int = 32768) -> torch.Tensor:
    """float32 logits (P, M) of the classes cand (P, M) for features f (P, E): rows of the weight gathered and
    dotted in float32, in blocks of `step` rows (the gathered weights stay ~100 MB)."""
    out = torch.empty(cand.shape, dtype=torch.float32, device=f.device)
    for a in range(0, f.shape[0], step):
        c = cand[a : a + step]
        w = weight[c].float()  # (p, M, E)
        out[a : a + step] = torch.einsum("pme,pe->pm", w, f[a : a + step].float()) + bias[c].float()
    return out


def _logsumexp(logits: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """float32 log-sum-exp over the classes of (P, C) logits given each row's max (P,) in float32, in blocks of
    rows whose float32 temporary stays small: 32 rows on a CPU (in cache), 32k on a GPU (~2 GB). On a CPU the
    differences are raised to -80 first: exp() of anything lower is a float32 denormal (x86 computes those ~25x
    slower) and adds < 17,143 * e^-80 ~ 1e-30."""
    cpu = logits.device.type == "cpu"
    step = 32 if cpu else 32768
    out = torch.empty_like(top)
    for a in range(0, logits.shape[0], step):
        d = torch.sub(logits[a : a + step], top[a : a + step, None])  # float32 (top's dtype wins)
        if cpu:
            d.clamp_(min=-80.0)
        out[a : a + step] = d.exp_().sum(-1)
    return out.log_() + top


def _reference(f: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int) -> tuple[Any, Any, Any]:
    """The readable path: the whole (P, C) logits table in the features' dtype."""
    logits = torch.addmm(bias.to(f.dtype), f, weight.t().to(f.dtype))  # (P, C)
    k = min(k, logits.shape[1])
    if logits.device.type != "cpu" and logits.shape[1] % BLOCK_C == 0 and logits.shape[1] // BLOCK_C > k:
        v, i = block_topk(logits, k)
    else:
        v, i = logits.topk(k, dim=-1)
    v = v.float()
    return v, i, _logsumexp(logits, v[:, 0])


def fused_available(device: torch.device | str) -> bool:
    """True on a CUDA device with Triton importable (the fused kernel's home); TRITON_INTERPRET=1 runs it on
    a CPU (slowly: for tests)."""
    import os

    interpret = os.environ.get("TRITON_INTERPRET") == "1"
    if torch.device(device).type != "cuda" and not interpret:
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def top_classes(f: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int, *,
                fused: bool | None = None, again: int | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | tuple[torch.Tensor, ...]:
    """Each row's k largest logits of f @ weight.T + bias, sorted (values float32, classes int64), and the
    float32 log-sum-exp over all classes; f (P, E), weight (C, E), bias (C,). `fused` None: the fused kernel
    where fused_available (the classes padded to a multiple of 128 first), else the reference path.

    `again` (an int R): nothing waits for the device. The fused kernel's cells with more than CAP candidates
    are read again in float32, the first R of them (a fixed number of cells: a count known only on the device
    would make the host wait for it), and a fourth tensor is returned: the count of such cells (0-d int64,
    on the device). Where it exceeds R some were not read again: the caller reads those rows again without
    `again` (OpticalReader.read does so for the batch). The reference path returns a count of 0."""
    k = min(k, weight.shape[0])
    if not _runs_fused(f, weight, k, fused):
        out = _reference(f, weight, bias, k)
        return out if again is None else (*out, torch.zeros((), dtype=torch.long, device=f.device))
    w, b = padded(weight, bias)
    return _fused(f.contiguous(), w.to(f.dtype).contiguous(), b.float().contiguous(), k, again=again)


def _runs_fused(f: torch.Tensor, weight: torch.Tensor, k: int, fused: bool | None) -> bool:
    """Whether top_classes takes the fused kernel: asked (or None and fused_available), enough blocks of
    classes for k, and k <= 8."""
    if fused is None:
        fused = fused_available(f.device) and f.shape[0] > 0
    k = min(k, weight.shape[0])
    return bool(fused) and -(-weight.shape[0] // BLOCK_C) > 2 * k and k <= 8


_KERNELS: dict[str, Any] = {}


def _kernels() -> dict[str, Any]:
    """The two Triton kernels, defined on first use (Triton is imported only where the fused path runs)."""
    if _KERNELS:
        return _KERNELS
    import triton
    import triton.language as tl

    @triton.jit
    def _tile_logits(f, fl, w_ptr, wl_ptr, b_ptr, cb, E: tl.constexpr, BC: tl.constexpr, PREC: tl.constexpr,
                     SPLIT: tl.constexpr):
        """(BP, BC) float32 logits of classes cb*BC.. for the tile's features f (and their low halves fl)."""
        cols = cb * BC + tl.arange(0, BC)
        e = tl.arange(0, E)
        w = tl.load(w_ptr + cols[None, :] * E + e[:, None])  # (E, BC): the weight's classes, transposed
        x = tl.dot(f, w, input_precision=PREC)
        if SPLIT:  # the float32 product from bf16 halves: f w + f wl + fl w (fl wl, ~2^-18 of it, left out)
            x = tl.dot(f, tl.load(wl_ptr + cols[None, :] * E + e[:, None]), x, input_precision=PREC)
            x = tl.dot(fl, w, x, input_precision=PREC)
        return x + tl.load(b_ptr + cols)[None, :]

    globals()["_tile_logits"] = _tile_logits  # Triton finds a kernel's callees among its module's globals

    @triton.jit
    def pass1(f_ptr, fl_ptr, w_ptr, wl_ptr, b_ptr, bmax_ptr, lse_ptr, thr_ptr, P, E: tl.constexpr, NB: tl.constexpr,
              BP: tl.constexpr, BC: tl.constexpr, K: tl.constexpr, PREC: tl.constexpr, SPLIT: tl.constexpr,
              CUT_: tl.constexpr, MARGIN_: tl.constexpr):
        rows = tl.program_id(0) * BP + tl.arange(0, BP)  # (BP,) this tile's cells
        live = rows < P
        e = tl.arange(0, E)
        f = tl.load(f_ptr + rows[:, None] * E + e[None, :], mask=live[:, None], other=0.0)  # (BP, E)
        fl = f
        if SPLIT:  # the features' low halves
            fl = tl.load(fl_ptr + rows[:, None] * E + e[None, :], mask=live[:, None], other=0.0)
        m = tl.full((BP,), float("-inf"), tl.float32)  # running max
        s = tl.zeros((BP,), tl.float32)  # running sum of exp(logit - m)
        # the 8 largest block maxima so far, r0 >= r1 >= ... >= r7 (an insertion network per block)
        r0 = tl.full((BP,), float("-inf"), tl.float32)
        r1, r2, r3, r4, r5, r6, r7 = r0, r0, r0, r0, r0, r0, r0
        for cb in range(0, NB):
            x = _tile_logits(f, fl, w_ptr, wl_ptr, b_ptr, cb, E, BC, PREC, SPLIT)  # (BP, BC) float32
            bm = tl.max(x, 1)
            tl.store(bmax_ptr + rows * NB + cb, bm, mask=live)
            c = bm
            h = tl.maximum(r0, c); c = tl.minimum(r0, c); r0 = h  # noqa: E702
            h = tl.maximum(r1, c); c = tl.minimum(r1, c); r1 = h  # noqa: E702
            h = tl.maximum(r2, c); c = tl.minimum(r2, c); r2 = h  # noqa: E702
            h = tl.maximum(r3, c); c = tl.minimum(r3, c); r3 = h  # noqa: E702
            h = tl.maximum(r4, c); c = tl.minimum(r4, c); r4 = h  # noqa: E702
            h = tl.maximum(r5, c); c = tl.minimum(r5, c); r5 = h  # noqa: E702
            h = tl.maximum(r6, c); c = tl.minimum(r6, c); r6 = h  # noqa: E702
            r7 = tl.maximum(r7, c)
            new = tl.maximum(m, bm)
            if tl.max(bm - new, 0) > -CUT_:  # else every cell has this block CUT below its max: m stays
                s = s * tl.exp2((m - new) * 1.4426950408889634) + tl.sum(
                    tl.exp2((x - new[:, None]) * 1.4426950408889634), 1)
                m = new
        tl.store(lse_ptr + rows, m + tl.log(s), mask=live)
        t = r7  # the K-th largest block max
        if K == 1:
            t = r0
        elif K == 2:
            t = r1
        elif K == 3:
            t = r2
        elif K == 4:
            t = r3
        elif K == 5:
            t = r4
        elif K == 6:
            t = r5
        elif K == 7:
            t = r6
        tl.store(thr_ptr + rows, tl.maximum(t, m - MARGIN_), mask=live)

    @triton.jit
    def pass2(f_ptr, fl_ptr, w_ptr, wl_ptr, b_ptr, bmax_ptr, thr_ptr, val_ptr, idx_ptr, cnt_ptr, P, E: tl.constexpr,
              NB: tl.constexpr, BP: tl.constexpr, BC: tl.constexpr, PREC: tl.constexpr, SPLIT: tl.constexpr,
              CAP_: tl.constexpr):
        rows = tl.program_id(0) * BP + tl.arange(0, BP)
        live = rows < P
        e = tl.arange(0, E)
        f = tl.load(f_ptr + rows[:, None] * E + e[None, :], mask=live[:, None], other=0.0)
        fl = f
        if SPLIT:  # the features' low halves
            fl = tl.load(fl_ptr + rows[:, None] * E + e[None, :], mask=live[:, None], other=0.0)
        t = tl.load(thr_ptr + rows, mask=live, other=float("inf"))  # (BP,) each cell's threshold
        n = tl.zeros((BP,), tl.int32)  # candidates found per cell
        for cb in range(0, NB):
            bm = tl.load(bmax_ptr + rows * NB + cb, mask=live, other=float("-inf"))
            if tl.max(bm - t, 0) >= 0:  # some cell of the tile has a class >= its threshold in this block
                cols = cb * BC + tl.arange(0, BC)
                x = _tile_logits(f, fl, w_ptr, wl_ptr, b_ptr, cb, E, BC, PREC, SPLIT)  # the same bits as pass 1
                keep = (x >= t[:, None]) & live[:, None]
                ki = keep.to(tl.int32)
                at = n[:, None] + tl.cumsum(ki, 1) - 1  # (BP, BC) each kept logit's place in its cell's list
                ok = keep & (at < CAP_)
                tl.store(val_ptr + rows[:, None] * CAP_ + at, x, mask=ok)
                tl.store(idx_ptr + rows[:, None] * CAP_ + at, cols[None, :] + at * 0, mask=ok)
                n += tl.sum(ki, 1)
        tl.store(cnt_ptr + rows, n, mask=live)

    _KERNELS.update(pass1=pass1, pass2=pass2, triton=triton)
    return _KERNELS


def _exact_top(f: torch.Tensor, rows: torch.Tensor, w: torch.Tensor, b: torch.Tensor, k: int) -> tuple[Any, Any]:
    """The k largest float32 logits (sorted) and their classes of the cells `rows` (n,) of f, by plain matrix
    products of AGAIN_STEP cells at a time (a page of noise may make every cell flat)."""
    wf = w.float().t()  # (E, C')
    parts = [torch.addmm(b[None, :], f[rows[a : a + AGAIN_STEP]].float(), wf).topk(k, dim=-1)
             for a in range(0, rows.numel(), AGAIN_STEP)]  # (n', C') float32 logits -> (n', k) each
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 x -> (hi, lo) bf16 with hi + lo = x to ~2^-17 of |x| (the fused kernel's float32 dots). On a
    CPU (the Triton interpreter, whose bf16 dots are wrong) the same values held in float32."""
    hi = x.to(torch.bfloat16)
    lo = (x - hi.float()).to(torch.bfloat16)
    return (hi, lo) if x.device.type != "cpu" else (hi.float(), lo.float())


def _fused(f: torch.Tensor, w: torch.Tensor, b: torch.Tensor, k: int, BP: int = 64, warps: int = 4,
           parts: dict | None = None, again: int | None = None, split: bool | None = None) -> tuple[Any, ...]:
    """The two-pass kernel (module doc); w (C', E) padded to a multiple of 128, b float32 (C',). `parts`: a dict
    that gets CUDA events around each step and the count of cells read again (scripts/gpu/readout_bench.py).
    `again`: read again among a fixed number of cells, no wait (top_classes)."""
    mark = (lambda name: parts.setdefault(name, torch.cuda.Event(enable_timing=True)).record()) if parts is not None else (lambda name: None)
    kern = _kernels()
    P, E = f.shape
    NB = w.shape[0] // BLOCK_C
    # float32 features: three bf16 dots of their halves (_halves); split=False: three tf32 dots (slower)
    split = f.dtype == torch.float32 if split is None else bool(split) and f.dtype == torch.float32
    fh, fl, wh, wl = (*_halves(f), *_halves(w)) if split else (f, f, w, w)
    prec = "tf32x3" if f.dtype == torch.float32 and not split else "ieee"  # (ignored by bf16 / fp16 dots)
    grid = (kern["triton"].cdiv(P, BP),)
    mark("start")
    bmax = torch.empty(P, NB, dtype=torch.float32, device=f.device)  # (P, NB) max of each block of classes
    lse = torch.empty(P, dtype=torch.float32, device=f.device)
    thr = torch.empty(P, dtype=torch.float32, device=f.device)  # (P,) the candidates' threshold
    kern["pass1"][grid](fh, fl, wh, wl, b, bmax, lse, thr, P, E=E, NB=NB, BP=BP, BC=BLOCK_C, K=k, PREC=prec,
                        SPLIT=split, CUT_=CUT, MARGIN_=MARGIN, num_warps=warps)
    mark("pass1")
    val = torch.full((P, CAP), float("-inf"), dtype=torch.float32, device=f.device)
    idx = torch.zeros(P, CAP, dtype=torch.int32, device=f.device)
    cnt = torch.empty(P, dtype=torch.int32, device=f.device)
    mark("threshold")
    kern["pass2"][grid](fh, fl, wh, wl, b, bmax, thr, val, idx, cnt, P, E=E, NB=NB, BP=BP, BC=BLOCK_C, PREC=prec,
                        SPLIT=split, CAP_=CAP, num_warps=warps)
    mark("pass2")
    v, j = val.topk(k, dim=-1)  # (P, k) sorted
    i = idx.gather(1, j).long()
    i = torch.where(torch.isinf(v), i[:, :1], i)  # past a cell's candidates: its best class again
    if again is not None:  # no wait: the first R flat cells read again (a fixed number of cells)
        flat = cnt > CAP  # (P,)
        # (R,) the first R flat cells, padded with cell 0 (read again too; kept only if flat: the same values),
        # placed by their rank among the flat cells (a scatter: nonzero would wait for the device)
        R = min(max(int(again), 1), P)
        rank = flat.cumsum(0) - 1  # (P,)
        to = torch.where(flat & (rank < R), rank, R)  # (P,) the slot of each cell; R: none
        cells = torch.arange(P, device=f.device)
        sel = torch.zeros(R + 1, dtype=torch.long, device=f.device).scatter_(0, to, cells)[:R]
        ev, ei = _exact_top(f, sel, w, b, k)  # (R, k) float32, (R, k)
        keep = flat[sel, None]  # (R, 1)
        v[sel], i[sel] = torch.where(keep, ev, v[sel]), torch.where(keep, ei, i[sel])
        return v, i, lse, flat.sum()
    bad = (cnt > CAP).nonzero().squeeze(1)  # more than CAP candidates (a flat distribution): read again exactly
    mark("topk")
    if bad.numel():
        v[bad], i[bad] = _exact_top(f, bad, w, b, k)
    mark("again")
    if parts is not None:
        parts["read again"] = int(bad.numel())
    return v, i, lse
