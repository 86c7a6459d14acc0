"""The fused glyph readout's constants and tile shapes against time and exactness (issue 13): the slot features
of 128 doc pages per tier as the shipped heads read them (bf16, every cell), the float32 reference readout
(the whole logits table) beside the fused kernel with MARGIN (nats below a cell's best logit under which no
class is a candidate), CUT (nats below the running max under which pass 1 skips a block's exps), BP (cells per
tile) and warps varied; per setting the device time of pass 1, pass 2 and the rest (median of 5, CUDA events),
cells read again, and against the reference: top-1 equal, max |log-sum-exp diff|, max |p(top-1) diff|.
    python3 scripts/gpu/readout_tune.py [--tiers=tiny,base]"""
import statistics
import sys

import torch

sys.path.insert(0, "benchmarks")
from read_speed import archived, doc_pages  # noqa: E402

from ocr_model import glyph_readout as gr  # noqa: E402
from ocr_model.page import page_at_tier  # noqa: E402
from ocr_model.page.codec import as_stored  # noqa: E402
from ocr_model.page.glyphs import cell_slots  # noqa: E402
from ocr_model.reader import load  # noqa: E402

tiers = next((a.split("=")[1] for a in sys.argv if a.startswith("--tiers=")), "tiny,base").split(",")
pages = doc_pages(128)
r = load(device="cuda", views={}, mode="grid")
# (features' dtype, split: float32 as three bf16 dots of halves, else three tf32 dots; MARGIN, CUT, BP, warps)
SETTINGS = [("bf16", None, 25.0, 40.0, 128, 8), ("bf16", None, 12.0, 40.0, 64, 4),
            ("fp32", False, 25.0, 40.0, 128, 8), ("fp32", False, 12.0, 40.0, 64, 4), ("fp32", True, 12.0, 40.0, 64, 4),
            ("fp32", True, 12.0, 40.0, 128, 8), ("fp32", True, 25.0, 40.0, 64, 4), ("fp32", True, 12.0, 24.0, 64, 4)]
with torch.inference_mode():
    for tier in tiers:
        ims = [as_stored(p.image, "base") for p in pages]
        ims = [archived(im if tier == "base" else page_at_tier(im, tier), tier) for im in ims]
        g = r._encode_grid(ims, tier)  # (B, h, w, D)
        head = r.glyph_heads[str(g.shape[1])]
        slots = torch.from_numpy(cell_slots(g.shape[1])).to(g.device)
        f = head.features(g.to(head.cls.weight.dtype))
        f32 = f.reshape(f.shape[0], -1, f.shape[-1])[:, slots].reshape(-1, f.shape[-1]).float().contiguous()  # (P, E)
        w, b = gr.padded(head.cls.weight.float(), head.cls.bias.float())
        ref = {"fp32": gr.top_classes(f32, w, b, 8, fused=False)}  # float32 reference (P, 8), (P, 8), (P,)
        fb, wb = f32.to(torch.bfloat16), w.to(torch.bfloat16).contiguous()
        ref["bf16"] = gr.top_classes(fb.float(), w, b, 8, fused=False)  # of the bf16-rounded features
        print(f"{tier}: P={f32.shape[0]} cells, E={f32.shape[1]}, classes {w.shape[0]}", flush=True)
        for dt, split, margin, cut, BP, warps in SETTINGS:
            gr.MARGIN, gr.CUT = margin, cut
            rv, ri, rl = ref[dt]
            rp = (rv[:, 0] - rl).exp()
            times = []
            for _ in range(6):
                parts: dict = {}
                v, i, lse = gr._fused(*((fb, wb) if dt == "bf16" else (f32, w)), b, 8, BP=BP, warps=warps, parts=parts,
                                      split=split)
                torch.cuda.synchronize()
                times.append({label: parts[a].elapsed_time(parts[z]) for label, a, z in
                              (("pass1", "start", "pass1"), ("pass2", "threshold", "pass2"), ("rest", "pass2", "again"),
                               ("total", "start", "again"))})
            ms = {n: round(statistics.median(t[n] for t in times[1:]), 2) for n in times[0]}
            top1 = (i[:, 0] == ri[:, 0]).float().mean().item()
            dp = ((v[:, 0] - lse).exp() - rp).abs().max().item()
            print(f"  {dt} {'halves' if split else 'tf32x3' if dt == 'fp32' else 'bf16  '} MARGIN={margin:4.0f} CUT={cut:3.0f} BP={BP:3d} warps={warps}: ms pass1 {ms['pass1']:6.2f} pass2 "
                  f"{ms['pass2']:6.2f} rest {ms['rest']:5.2f} total {ms['total']:6.2f}; read again "
                  f"{parts['read again']}; top-1 equal {top1:.6f}; lse max diff {(lse - rl).abs().max().item():.2e}; "
                  f"p(top-1) max diff {dp:.2e}", flush=True)
        gr.MARGIN, gr.CUT = 12.0, 40.0
        for again in (None, 5700):  # top_classes as the reader calls it: waiting for the cells read again, or not
            ts = []
            for _ in range(6):
                a, z = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                out = gr.top_classes(f32, w, b, 8, again=again)
                z.record()
                torch.cuda.synchronize()
                ts.append(a.elapsed_time(z))
            print(f"  top_classes float32 again={again}: {statistics.median(ts[1:]):.2f} ms", flush=True)
