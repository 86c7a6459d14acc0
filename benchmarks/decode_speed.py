"""Encode pages/s and decode tokens/s for a preset with random weights (speed only, no quality).

    python benchmarks/decode_speed.py --config small --mode base --tokens 700
Runs on CUDA when available (--device), else CPU. Prints a table; never asserts times.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from ocr_model.config import MODES, load_config
from ocr_model.weights import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small", help="preset name, JSON file or checkpoint dir")
    ap.add_argument("--mode", default="base", choices=sorted(MODES), help="image mode (page side)")
    ap.add_argument("--tokens", type=int, default=700, help="tokens to decode per page (EOS is suppressed)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="decode batch sizes to try")
    ap.add_argument("--pages", type=int, default=3, help="pages to encode for the encode timing")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                    help="weights dtype (default: float32 on CPU, bfloat16 on CUDA)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave the default)")
    ap.add_argument("--no-graph", action="store_true", help="on CUDA, decode eagerly instead of with a CUDA graph")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    cfg = load_config(args.config)
    torch.manual_seed(0)
    model = build_model(cfg, device=dev, dtype=dtype).eval()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    S = MODES[args.mode]
    px = torch.randn(1, 3, S, S, device=dev)
    rows = []
    with torch.inference_mode():
        model.encode(px)  # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(args.pages):
            visual = model.encode(px)
        sync()
        enc = (time.perf_counter() - t0) / args.pages
    rows.append(("encode", f"{args.mode} {S}px", 1, f"{enc * 1000:.1f} ms/page", f"{1 / enc:.2f} pages/s"))
    for B in args.batch:
        vis = visual.expand(B, -1, -1).contiguous()
        # eos_id=-1 never matches, so every row decodes exactly --tokens tokens; the n-gram ban stays on
        kw = dict(max_new_tokens=args.tokens, eos_id=-1, cuda_graph=False if args.no_graph else None)
        model.generate(vis, **{**kw, "max_new_tokens": 8})  # warm-up (and graph capture on CUDA)
        sync()
        t0 = time.perf_counter()
        gens = model.generate(vis, **kw)
        sync()
        dt = time.perf_counter() - t0
        n = sum(len(g.token_ids) for g in gens)
        rows.append(("decode", f"{n // B} tok/page", B, f"{dt:.2f} s", f"{n / dt:.0f} tok/s"))
    print(f"config={cfg.name} device={dev} dtype={dtype} threads={torch.get_num_threads()}")
    print(f"{'stage':<8} {'what':<16} {'batch':>5} {'time':>14} {'rate':>14}")
    for r in rows:
        print(f"{r[0]:<8} {r[1]:<16} {r[2]:>5} {r[3]:>14} {r[4]:>14}")


if __name__ == "__main__":
    main()
