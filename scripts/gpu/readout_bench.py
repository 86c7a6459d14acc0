"""The fused glyph readout, part by part, on the slot features of real pages (issue 13): 128 doc pages per tier
read by the shipped heads, every cell; CUDA event times of pass 1, the threshold, pass 2, the final top-k and the
cells read again by the reference path, for a few tile shapes; fused vs reference top-k and log-sum-exp.
    python3 scripts/gpu/readout_bench.py        (one H200: docs/benchmarks.md)"""
import sys

import torch

sys.path.insert(0, "benchmarks")
from read_speed import doc_pages  # noqa: E402

from ocr_model import glyph_readout as gr  # noqa: E402
from ocr_model.page import TIERS, page_at_tier  # noqa: E402
from ocr_model.page.codec import as_stored  # noqa: E402
from ocr_model.page.glyphs import cell_slots  # noqa: E402
from ocr_model.reader import load  # noqa: E402

pages = doc_pages(128)
r = load(device="cuda", views={}, mode="grid")
with torch.inference_mode():
    for tier in ("base", "small", "tiny"):
        ims = [as_stored(p.image, "base") for p in pages]
        if tier != "base":
            ims = [as_stored(page_at_tier(im, tier), tier) for im in ims]
        g = r._encode_grid(ims, tier)  # (B, h, w, D)
        head = r.glyph_heads[str(g.shape[1])]
        slots = torch.from_numpy(cell_slots(g.shape[1])).to(g.device)
        for dt in (torch.bfloat16, torch.float32):
            f = head.features(g.to(head.cls.weight.dtype))
            f = f.reshape(f.shape[0], -1, f.shape[-1])[:, slots].reshape(-1, f.shape[-1]).to(dt).contiguous()  # (P, E)
            w, b = gr.padded(head.cls.weight.to(dt), head.cls.bias)
            b = b.float()
            rv, ri, rl = gr.top_classes(f, w, b, 8, fused=False)
            for BP, warps in ((128, 8), (64, 4), (64, 8)):
                for _ in range(2):
                    parts = {}
                    v, i, lse = gr._fused(f, w.contiguous(), b, 8, BP=BP, warps=warps, parts=parts)
                torch.cuda.synchronize()
                names = ["pass1", "threshold", "pass2", "topk", "again"]
                ms, prev = {}, parts["start"]
                for n in names:
                    ms[n] = round(prev.elapsed_time(parts[n]), 2)
                    prev = parts[n]
                same = (torch.sort(i, -1).values == torch.sort(ri, -1).values).all(-1).float().mean().item()
                print(f"{tier} {str(dt)[6:]} BP={BP} warps={warps} P={f.shape[0]} ms {ms} total "
                      f"{parts['start'].elapsed_time(parts['again']):.1f}; read again {parts['read again']}; "
                      f"top-8 sets equal {same:.5f}; lse max diff {(lse - rl).abs().max().item():.2e}", flush=True)
