"""How fast optimem is and what it costs on disk: render, encode, decode, add, recall, bytes per turn.

    python benchmarks/speed.py [--model DIR] [--archive-sizes 1000,10000,100000] [--json speed.json] [--plot lat.png]

Every timing is the median over `--repeats` runs (recall: p50/p95 over `--queries` queries), on the machine
named in the output; nothing is asserted. Sections:
  render    conversation turns -> 1024 px pages (optimem.pg.render_turns), pages/s
  encode    page images -> visual tokens with the model, per tier, pages/s (batch 1 and 4)
  decode    greedy decoding with EOS suppressed (every row decodes exactly --decode-tokens), tokens/s
  add       Memory.add throughput with the default embedder (E5) and the model's token counter, turns/s
  recall    latency at growing archive sizes. The big archives are built with add_many, the feature-hashing
            embedder (no model: E5 would take ~20 min per 100k turns here) and a reader that returns a fixed
            string instantly, so the numbers are search + scoring + page loading, not OCR; a separate line
            reopens the largest store with the real model (each recall then decodes up to k pages).
  bytes     PNG bytes per turn at each tier vs the turn's raw UTF-8 text (and gzip of it), plus a real
            store's bytes on disk per turn
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TIERS = ("base", "small", "tiny", "gist")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cpus, load {load:.1f} at start, Python {platform.python_version()}"


def conversation(n_turns: int, seed: int = 0) -> list[dict]:
    """Turns from the demo's packaged haystack text (chatterbot, fortunes, faker), repeated as needed."""
    import random

    from demos.haystack import default_pool

    pool, _ = default_pool(seed)
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < n_turns:
        out += [dict(t) for t in rng.choice(pool)]
    return out[:n_turns]


def _median_rate(fn, units: float, repeats: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(units / (time.perf_counter() - t0))
    return statistics.median(rates), rates


class InstantReader:
    """A PageReader that returns a fixed text at once: times recall without OCR."""

    name = "instant"

    def read(self, images: Sequence[Any], tier: str) -> list[Any]:
        from optimem.reader import Reading

        return [Reading("[user #1]\nplaceholder", 1.0, True, 2) for _ in images]

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)


# ---------------------------------------------------------------------------------------------------


def bench_render(turns: list[dict], repeats: int) -> dict:
    from ocr_model.page import Turn, render_turns

    ts = [Turn(t["role"], t["text"], id=i) for i, t in enumerate(turns)]
    n_pages = len(render_turns(ts))
    rate, rates = _median_rate(lambda: render_turns(ts), n_pages, repeats)
    return {"pages": n_pages, "turns": len(ts), "pages_per_s": rate, "runs": rates}


def bench_model(reader: Any, turns: list[dict], repeats: int, decode_tokens: int) -> dict:
    import torch

    from ocr_model.page import Turn, page_at_tier, render_turns

    pages = render_turns([Turn(t["role"], t["text"], id=i) for i, t in enumerate(turns)])[:4]
    pages = (pages * 4)[:4]
    out: dict = {"encode": {}, "decode": {}, "read": {}}
    with torch.inference_mode():
        for tier in TIERS:
            ims = [page_at_tier(p.image, tier) for p in pages]
            reader.encode(ims[:1], tier)  # warm-up
            for b in (1, 4):
                rate, _ = _median_rate(lambda ims=ims, b=b, tier=tier: reader.encode(ims[:b], tier), b, repeats)
                out["encode"][f"{tier}/b{b}"] = rate
            # a whole read (encode + glyph heads or decoder, as the reader's mode picks); only where it is fast
            if getattr(reader, "grid_views", None) and reader.grid_views(tier):
                methods = {r.method for r in reader.read(ims[:1], tier)}
                rate, _ = _median_rate(lambda ims=ims, tier=tier: reader.read(ims[:4], tier), 4, repeats)
                out["read"][tier] = {"pages_per_s": rate, "methods": sorted(methods)}
        visual = reader.encode([page_at_tier(pages[0].image, "base")], "base")  # [1,Tv,D]
        reader.model.generate(visual, max_new_tokens=4, eos_id=-1)  # warm-up
        for b in (1, 4):
            vis = visual.expand(b, -1, -1).contiguous()
            rate, _ = _median_rate(
                lambda vis=vis: reader.model.generate(vis, max_new_tokens=decode_tokens, eos_id=-1),
                b * decode_tokens,
                max(1, repeats // 2),
            )
            out["decode"][f"b{b}"] = rate
    return out


def bench_add(turns: list[dict], reader: Any, chunk: int = 50) -> dict:
    from optimem import Memory, Turn

    rates = []
    with Memory(model=reader, verify=False) as m:  # read speed is timed on its own below
        m.add({"role": "user", "content": "warm-up"})
        for s in range(0, len(turns), chunk):
            t0 = time.perf_counter()
            for t in turns[s : s + chunk]:
                m.add(Turn(role=t["role"], text=t["text"]))
            rates.append(len(turns[s : s + chunk]) / (time.perf_counter() - t0))
        st = m.stats()
    return {
        "turns": len(turns),
        "turns_per_s": statistics.median(rates),
        "runs": rates,
        "pages": dict(st.pages),
        "embedder": m.embedder.name,
    }


def bench_recall(
    sizes: list[int], queries: int, model_reader: Any | None, k: int, seed: int, model_queries: int = 3
) -> dict:
    from optimem import HashingEmbedder, Memory, Turn

    turns = conversation(max(sizes) + 2000, seed)
    emb = HashingEmbedder()
    qs = [t["text"][:120] for t in turns[:: max(1, len(turns) // queries)][:queries]]
    out: dict = {"embedder": emb.name, "k": k, "queries": len(qs), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        m = Memory(store, model=InstantReader(), embedder=emb, verify=False)  # search latency, no reading
        added = 0
        t_build = time.perf_counter()
        for size in sorted(sizes):
            while m.stats().turns_archived < size:
                batch = turns[added : added + 1000]
                m.add_many([Turn(role=t["role"], text=t["text"]) for t in batch])
                added += len(batch)
            st = m.stats()
            for q in qs[:3]:
                m.recall(q, k=k, reinforce=False)  # warm-up: index load, page cache
            row = {
                "archived_turns": st.turns_archived,
                "pages": dict(st.pages),
                "index": st.index_kind,
                "build_s": time.perf_counter() - t_build,
            }
            for decode in (False, True):
                lat = []
                for q in qs:
                    t0 = time.perf_counter()
                    m.recall(q, k=k, decode=decode, reinforce=False)
                    lat.append(time.perf_counter() - t0)
                key = "decode_instant_reader" if decode else "no_decode"
                row[key] = {
                    "p50_ms": 1000 * float(np.percentile(lat, 50)),
                    "p95_ms": 1000 * float(np.percentile(lat, 95)),
                }
            out["sizes"][str(size)] = row
            print(
                f"  recall at {st.turns_archived} archived turns: {row['no_decode']['p50_ms']:.1f} ms p50 (no decode)",
                file=sys.stderr,
            )
        m.close()
        if model_reader is not None:
            # every recall must read its pages: no decoded-page cache (pages shared by two recalled turns are
            # still read once per recall)
            m = Memory(store, model=model_reader, embedder=emb, verify=False, cache_pages=0)
            lat = []
            for q in qs[:model_queries]:
                t0 = time.perf_counter()
                m.recall(q, k=k, reinforce=False)
                lat.append(time.perf_counter() - t0)
            out["with_model"] = {
                "archived_turns": m.stats().turns_archived,
                "queries": len(lat),
                "p50_s": float(np.percentile(lat, 50)),
                "p95_s": float(np.percentile(lat, 95)),
                "note": "decoded-page cache emptied before each recall: every recall reads its pages",
            }
            m.close()
    return out


def bench_bytes(turns: list[dict]) -> dict:
    from optimem import Memory
    from ocr_model.page.codec import PAGE_LEVELS
    from ocr_model.page.codec import png_bytes
    from ocr_model.page import Turn, page_at_tier, render_turns

    pages = render_turns([Turn(t["role"], t["text"], id=i) for i, t in enumerate(turns)])
    raw = sum(len(t["text"].encode("utf-8")) for t in turns)
    gz = len(gzip.compress("\n".join(t["text"] for t in turns).encode("utf-8")))
    out: dict = {
        "turns": len(turns),
        "pages": len(pages),
        "raw_text_bytes_per_turn": raw / len(turns),
        "gzip_text_bytes_per_turn": gz / len(turns),
        "png_bytes_per_turn": {},
    }
    out["png8_bytes_per_turn"] = {}
    for tier in TIERS:
        images = [page_at_tier(p.image, tier) for p in pages]
        # as Memory stores them (PAGE_LEVELS greys), and as 8-bit PNGs (page_levels=256)
        out["png_bytes_per_turn"][tier] = sum(len(png_bytes(im, PAGE_LEVELS)) for im in images) / len(turns)
        out["png8_bytes_per_turn"][tier] = sum(len(png_bytes(im, 256)) for im in images) / len(turns)
    with Memory(model=InstantReader(), embedder=__import__("optimem").HashingEmbedder(), working_tokens=64,
                verify=False) as m:
        m.add_many([Turn(role=t["role"], text=t["text"]) for t in turns])
        st = m.stats()
        out["store_bytes_per_turn"] = st.bytes_on_disk / len(turns)
        out["store_pages"] = dict(st.pages)
    return out


def run(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    res: dict = {
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "max_new_tokens": args.max_new_tokens,
    }
    turns = conversation(400, args.seed)
    res["section_seconds"] = secs = {}
    t0 = time.perf_counter()
    print("render ...", file=sys.stderr)
    res["render"] = bench_render(turns, args.repeats)
    secs["render"] = time.perf_counter() - t0
    reader = None
    if not args.no_model:
        from demos.haystack import load_reader

        reader, res["model"] = load_reader(args.model, args.max_new_tokens, 4)
        print("encode / decode ...", file=sys.stderr)
        t0 = time.perf_counter()
        res["model_speed"] = bench_model(reader, turns, args.repeats, args.decode_tokens)
        secs["encode_decode"] = time.perf_counter() - t0
        print("add ...", file=sys.stderr)
        t0 = time.perf_counter()
        res["add"] = bench_add(conversation(args.add_turns, args.seed + 1), reader)
        secs["add"] = time.perf_counter() - t0
    print("bytes ...", file=sys.stderr)
    t0 = time.perf_counter()
    res["bytes"] = bench_bytes(conversation(300, args.seed + 2))
    secs["bytes"] = time.perf_counter() - t0
    sizes = [int(s) for s in args.archive_sizes.split(",") if s]
    if sizes:
        print("recall ...", file=sys.stderr)
        t0 = time.perf_counter()
        res["recall"] = bench_recall(sizes, args.queries, reader, args.k, args.seed, args.model_queries)
        secs["recall"] = time.perf_counter() - t0
    return res


def table(res: dict) -> str:
    lines = [f"Machine: {res['machine']}; torch threads {res['torch_threads']}; medians of {res['repeats']} runs.", ""]
    r = res["render"]
    lines += [
        "| what | rate |",
        "|---|---|",
        f"| render_turns ({r['turns']} turns -> {r['pages']} pages) | {r['pages_per_s']:.1f} pages/s |",
    ]
    if "model_speed" in res:
        ms = res["model_speed"]
        for key, v in ms["encode"].items():
            tier, b = key.split("/")
            lines.append(f"| encode {tier} ({b.replace('b', 'batch ')}) | {v:.2f} pages/s |")
        for key, v in ms["decode"].items():
            lines.append(f"| decode ({key.replace('b', 'batch ')}) | {v:.0f} tokens/s |")
        for tier, v in ms.get("read", {}).items():
            lines.append(f"| read a full chat page, {tier} (batch 4, {'/'.join(v['methods'])}) | "
                         f"{v['pages_per_s']:.2f} pages/s ({1 / v['pages_per_s']:.2f} s/page) |")
        a = res["add"]
        lines.append(
            f"| Memory.add ({a['turns']} turns, {a['embedder']}, page-outs included) | {a['turns_per_s']:.1f} turns/s |"
        )
    if "recall" in res:
        rc = res["recall"]
        lines += [
            "",
            f"Recall latency (k = {rc['k']}, {rc['queries']} queries, embedder {rc['embedder']}, "
            "instant reader: search + scoring + page loading, no OCR):",
            "",
            "| archived turns | pages | index | p50 no decode | p95 no decode | p50 with pages | p95 with pages |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rc["sizes"].values():
            nd, dd = row["no_decode"], row["decode_instant_reader"]
            lines.append(
                f"| {row['archived_turns']:,} | {sum(row['pages'].values()):,} | {row['index']} | "
                f"{nd['p50_ms']:.1f} ms | {nd['p95_ms']:.1f} ms | {dd['p50_ms']:.1f} ms | {dd['p95_ms']:.1f} ms |"
            )
        if "with_model" in rc:
            w = rc["with_model"]
            lines += [
                "",
                f"With the OCR model reading the pages (at most {res['max_new_tokens']} tokens per page; "
                f"{w['archived_turns']:,} archived turns, "
                f"{w['queries']} queries, page cache emptied before each): "
                f"p50 {w['p50_s']:.1f} s, p95 {w['p95_s']:.1f} s per recall.",
            ]
    b = res["bytes"]
    lines += [
        "",
        f"Bytes per turn ({b['turns']} turns on {b['pages']} pages): raw UTF-8 text "
        f"{b['raw_text_bytes_per_turn']:.0f} B, gzip {b['gzip_text_bytes_per_turn']:.0f} B; a store with all "
        f"turns archived: {b['store_bytes_per_turn']:.0f} B/turn (pages {b['store_pages']}, vectors, SQLite).",
        "",
        "| tier | PNG bytes per turn as stored (16 greys) | x raw text | 8-bit PNG bytes per turn | x raw text |",
        "|---|---|---|---|---|",
    ]
    raw = b["raw_text_bytes_per_turn"]
    for tier, v in b["png_bytes_per_turn"].items():
        v8 = b.get("png8_bytes_per_turn", {}).get(tier, float("nan"))
        lines.append(f"| {tier} | {v:.0f} | {v / raw:.1f} | {v8:.0f} | {v8 / raw:.1f} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(res["recall"]["sizes"].values())
    x = [r["archived_turns"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for key, label, style in (
        ("no_decode", "recall, decode=False", "-o"),
        ("decode_instant_reader", "recall, pages loaded (instant reader)", "-s"),
    ):
        line = ax.plot(x, [r[key]["p50_ms"] for r in rows], style, label=f"{label} p50")[0]
        ax.plot(
            x,
            [r[key]["p95_ms"] for r in rows],
            style.replace("-", ":"),
            color=line.get_color(),
            alpha=0.6,
            label=f"{label} p95",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("archived turns")
    ax.set_ylabel("latency (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("Memory.recall latency vs archive size (2-core CPU, shared)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="OCR model checkpoint directory (default: the shipped model)")
    ap.add_argument("--no-model", action="store_true", help="skip encode/decode/add and the model recall line")
    ap.add_argument("--archive-sizes", default="1000,10000,100000", help="archived turns to time recall at ('' = skip)")
    ap.add_argument("--queries", type=int, default=40, help="recall queries per archive size")
    ap.add_argument("--k", type=int, default=5, help="turns per recall")
    ap.add_argument("--model-queries", type=int, default=3, help="recalls timed with the real model reading pages")
    ap.add_argument(
        "--max-new-tokens",
        type=int,
        default=600,
        help="the model reader's cap on tokens per page (a full page is ~1000)",
    )
    ap.add_argument("--repeats", type=int, default=5, help="repeats per timing (the median is reported)")
    ap.add_argument("--decode-tokens", type=int, default=200, help="tokens decoded per page in the decode timing")
    ap.add_argument("--add-turns", type=int, default=300, help="turns added in the add timing")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0, help="conversation seed")
    ap.add_argument("--json", default=None, help="write the numbers here")
    ap.add_argument("--plot", default=None, help="write the recall-latency PNG here")
    args = ap.parse_args(argv)
    res = run(args)
    print(table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1), encoding="utf-8")
    if args.plot and "recall" in res:
        try:
            plot(res, args.plot)
        except ImportError:
            print("no plot written: pip install matplotlib", file=sys.stderr)
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
