"""What storing a page costs and what it does to reading: PNG grey levels x how the page reached its tier.

    python benchmarks/storage.py --corpus corpus/ [--pages 4] [--model DIR] [--json storage.json]

Held-out pages (never trained on) of every text kind are rendered at 1024 px and brought to each tier two ways:
  direct  resampled once from the 1024 px render (a page written straight at that tier)
  faded   through every tier above it, each step stored and read back as Memory's consolidation does
          (base -> small -> tiny -> gist: a page that faded while the conversation went on)
and stored with `page_levels` 256 (8-bit PNG) or 16 (Memory's default, a 4-bit palette PNG). For each case it
prints the median PNG bytes per page and the reader's character precision, from the tier's own visual tokens
and with the library's default views. Prints a table; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path


def main(argv=None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout
    from ocr_model import data
    from ocr_model.eval import char_precision
    from ocr_model.page.codec import as_stored
    from ocr_model.page.codec import png_bytes
    from optimem.reader import OpticalReader, shipped_model_dir
    from ocr_model.page import render_plain_page

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="corpus", help="corpus directory (python -m ocr_model.data build)")
    ap.add_argument("--pages", type=int, default=4, help="held-out pages per text kind")
    ap.add_argument("--tiers", default="small,tiny,gist", help="comma-separated tiers below base")
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--seed", type=int, default=5, help="page sampling seed")
    ap.add_argument("--max-new-tokens", type=int, default=1200, help="decoder cap, for pages no glyph head reads")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args(argv)

    model = args.model or shipped_model_dir()
    if model is None:
        raise SystemExit("no shipped model under ocr_model/weights/; pass --model DIR")
    corpus = data.Corpus(args.corpus, "heldout")
    rng = random.Random(args.seed)
    pages = [render_plain_page(corpus.sample(kind, rng, n_chars=2800)) for kind in data.KINDS for _ in range(args.pages)]
    readers = {"own view": OpticalReader.from_pretrained(model, views={}, max_new_tokens=args.max_new_tokens),
               "default views": OpticalReader.from_pretrained(model, max_new_tokens=args.max_new_tokens)}
    order = ["base"] + args.tiers.split(",")
    results = []
    for levels in (256, 16):
        faded = [as_stored(p.image, "base", levels) for p in pages]  # the chain starts at the top tier
        for tier in order[1:]:
            faded = [as_stored(im, tier, levels) for im in faded]
            for how in ("direct", "faded"):
                images = [as_stored(p.image, tier, levels) for p in pages] if how == "direct" else faded
                # images already hold `levels` greys, so png_bytes writes the very file Memory would store
                row = {"tier": tier, "levels": levels, "how": how,
                       "png_bytes": statistics.median(len(png_bytes(im, levels)) for im in images)}
                for name, reader in readers.items():
                    if name == "own view" and not reader.grid_views(tier):
                        continue  # no head of its own: only the views read it by grid
                    got = reader.read(images, tier)
                    row[name] = statistics.mean(char_precision(p.text, r.text) for p, r in zip(pages, got))
                results.append(row)
                print(json.dumps(row), flush=True)

    print(f"\n{len(pages)} held-out pages ({args.pages} per kind), model {model}\n")
    print("| tier | grey levels | reached by | PNG bytes per page (median) | own view | default views |")
    print("|---|---|---|---|---|---|")
    for r in results:
        own = f"{r['own view']:.4f}" if "own view" in r else "(no head)"
        print(f"| {r['tier']} | {r['levels']} | {r['how']} | {r['png_bytes']:,.0f} | {own} | {r['default views']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return {"results": results}


if __name__ == "__main__":
    main()
