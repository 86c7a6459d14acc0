"""Pages per second of the read path, end to end, beside the encoder alone, per tier (GPU or CPU).

    python benchmarks/read_speed.py [--model DIR] [--device cuda] [--pages 512] [--batch 128] [--json out.json]

Pages: conversation pages drawn by Memory's renderer from this repository's own docs (English prose, tables
and code), stored as Memory stores them (16 greys), faded to each tier and opened from their PNG as Memory
reads them (`archived`). For each tier, in one run:

    encoder       OpticalModel.encode_grid on pixel tensors already on the device (the model alone), with
                  the SAM attention the readers use (the (N, N) bias table added to the scores)
    encoder folded  the same with the bias folded into the dot products (OpticalReader(fold_bias=True))
    encoder compiled  the encoder as OpticalReader(compile=True) runs it (torch.compile, --compile)
    pixels        PIL page images -> model input on the device (OpticalReader.pixels)
    read own      OpticalReader.read(images, tier) with views={}: pixels, encoder, glyph heads, top-k,
                  homoglyphs, text and token counts - everything a caller gets, from the tier's own tokens
                  (on a GPU the host side of each batch overlaps the next batch: OpticalReader.overlap)
    read inline   read own with overlap=False: every batch's host side in line (side by side with the above)
    read reference  read own with fused=False: the glyph readout's reference path, through the (cells, classes)
                  logits table, instead of the fused kernel (ocr_model/glyph_readout.py)
    read views    the same with the default views (the page also resampled to the other tiers and encoded;
                  on a GPU resampled there, image_process.resample_pages)
    read rows     read own, asking for 3 rows per page (what a recall of one turn reads)
    read own compiled, read views compiled   read own / read views with compile=True (--compile; the first,
                  untimed pass compiles)
    encoder graphs, read own graphs, read views graphs   the same compiled with torch.compile's
                  mode="reduce-overhead" (CUDA graphs: one launch per batch; OpticalReader(compile="reduce-overhead"))
    read own threads  read own (compiled with --compile) on the worker-thread path instead of the queued one
                  (OpticalReader._ahead = False: each batch waited for, its host side on a worker thread while
                  the next batch is read; the default on a GPU queues each batch's device work first and makes
                  the previous batch's Readings on the calling thread)

Each figure is the median of --repeats timed passes over all pages (after one warm-up pass), pages/s.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def doc_pages(n: int) -> list:
    from ocr_model.page import Turn, render_turns

    texts = []
    for p in sorted((ROOT / "docs").glob("*.md")):
        texts += [b.strip() for b in p.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    turns = [Turn("user" if i % 2 == 0 else "assistant", t[:600]) for i, t in enumerate(texts)]
    pages = render_turns(turns)
    return [pages[i % len(pages)] for i in range(n)]


def archived(image, tier: str):
    """A page image as Memory reads it back: stored at `tier` (as_stored: 16 greys), its PNG opened, greyscale
    (Memory._page_image). Pillow owns that memory, so a reader copies it out in one copy (copy_pixels)."""
    import io

    from PIL import Image

    from ocr_model.page.codec import as_stored, png_bytes

    return Image.open(io.BytesIO(png_bytes(as_stored(image, tier)))).convert("L")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--pages", type=int, default=512)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--tiers", default="base,small,tiny")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="bfloat16", help="model dtype on the device (float32 on CPU)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="skip the encoder folded, pixels, inline and reference rows")
    ap.add_argument("--compile", action="store_true", help="also the readers with compile=True (torch.compile)")
    ap.add_argument("--own-only", action="store_true", help="only the own-view readers (no views, rows, threads rows)")
    args = ap.parse_args(argv)

    import torch

    from ocr_model.page import page_at_tier
    from ocr_model.page.codec import as_stored
    from ocr_model.deepencoder import fold_attention_bias
    from ocr_model.reader import OpticalReader, shipped_model_dir
    from ocr_model.glyphs import load_glyph_heads
    from ocr_model.weights import load_pretrained

    d = args.model or shipped_model_dir()
    dtype = getattr(torch, args.dtype) if args.device != "cpu" else torch.float32
    model, tok = load_pretrained(d, device=args.device, dtype=dtype)
    heads = load_glyph_heads(d, model.cfg.decoder.dim).to(device=args.device, dtype=dtype)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    pages = doc_pages(args.pages)
    out = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
           "pages": args.pages, "batch": args.batch, "dtype": str(dtype), "tiers": {}}

    def rate(fn) -> float:
        fn()
        sync()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return round(args.pages / statistics.median(times), 1)

    for tier in args.tiers.split(","):
        stored = [as_stored(p.image, "base") for p in pages]
        ims = [archived(im if tier == "base" else page_at_tier(im, tier), tier) for im in stored]
        own = OpticalReader(model, tok, glyph_heads=heads, views={}, batch_size=args.batch, mode="grid")
        inline = OpticalReader(model, tok, glyph_heads=heads, views={}, batch_size=args.batch, mode="grid",
                               overlap=False)
        reference = OpticalReader(model, tok, glyph_heads=heads, views={}, batch_size=args.batch, mode="grid",
                                  fused=False)
        views = OpticalReader(model, tok, glyph_heads=heads, batch_size=args.batch, mode="grid")
        chunks = [ims[i:i + args.batch] for i in range(0, len(ims), args.batch)]
        pix = [own.pixels(c, tier) for c in chunks]

        def encoder(fold: bool):
            fold_attention_bias(model, fold)
            with torch.inference_mode(), torch.autocast(args.device.split(":")[0], dtype=dtype, enabled=args.device != "cpu"):
                for x in pix:
                    model.encode_grid(x)

        def encoder_compiled(reader):
            with torch.inference_mode():
                for x in pix:
                    reader._encode(x)

        def pixels():
            for c in chunks:
                own.pixels(c, tier)

        row = {"encoder": rate(lambda: encoder(False))}
        if not args.quick:
            row.update({"encoder folded": rate(lambda: encoder(True)), "pixels": rate(pixels),
                        "read inline": rate(lambda: inline.read(ims, tier)),
                        "read reference": rate(lambda: reference.read(ims, tier))})
        threads = OpticalReader(model, tok, glyph_heads=heads, views={}, batch_size=args.batch, mode="grid",
                                compile=args.compile)
        threads._ahead = False
        row["read own"] = rate(lambda: own.read(ims, tier))
        if not args.own_only:
            row.update({"read own threads" + (" compiled" if args.compile else ""): rate(lambda: threads.read(ims, tier)),
                        "read views": rate(lambda: views.read(ims, tier)),
                        "read rows": rate(lambda: own.read(ims, tier, rows=[[4, 5, 6]] * len(ims)))})
        if args.compile:
            torch._dynamo.config.recompile_limit = 64  # every reader here shares the model's graphs (3 modes x sizes)
            own_c = OpticalReader(model, tok, glyph_heads=heads, views={}, batch_size=args.batch, mode="grid", compile=True)
            views_c = OpticalReader(model, tok, glyph_heads=heads, batch_size=args.batch, mode="grid", compile=True)
            own_g = OpticalReader(model, tok, glyph_heads=heads, views={}, batch_size=args.batch, mode="grid",
                                  compile="reduce-overhead")
            views_g = OpticalReader(model, tok, glyph_heads=heads, batch_size=args.batch, mode="grid",
                                    compile="reduce-overhead")
            row.update({"encoder compiled": rate(lambda: encoder_compiled(own_c)),
                        "encoder graphs": rate(lambda: encoder_compiled(own_g)),
                        "read own compiled": rate(lambda: own_c.read(ims, tier)),
                        "read own graphs": rate(lambda: own_g.read(ims, tier))})
            if not args.own_only:
                row.update({"read views compiled": rate(lambda: views_c.read(ims, tier)),
                            "read views graphs": rate(lambda: views_g.read(ims, tier))})
        if args.device.startswith("cuda"):
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        got = own.read(ims[:8], tier)
        from ocr_model.eval import char_precision

        row["sample_precision"] = round(sum(char_precision(p.text, r.text) for r, p in zip(got, pages[:8])) / 8, 4)
        out["tiers"][tier] = row
        print(tier, row, flush=True)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
