"""Needle in a haystack through optimem's Memory, side by side with a truncated window and text retrieval.

    python -m demos.needle_in_haystack                  # 81-393 s on 2 shared CPU cores (README)
    python -m demos.needle_in_haystack --model DIR      # any ocr_model checkpoint directory
    python -m demos.needle_in_haystack --full           # history lengths up to 1M tokens (hours on a CPU)
    python -m demos.needle_in_haystack --haystack locomo10.json   # LoCoMo (CC BY-NC), not shipped

For each history length, a long conversation (the haystack) is built, needles (facts with random values:
"the access code for vault 7 is QX-4471-MB") are inserted at depths 0%..100% of it, and every turn is fed
through `Memory.add`. The working memory overflows, old turns are paged out to images, and the forgetting
curve fades them (the policy's strength is set from the haystack's length, so the deepest needles reach the
faint tiers). Then each needle's question is asked of three systems, each handing an LLM at most `--budget`
context tokens:

    truncation  the last `--budget` tokens of the conversation as text (what a plain chat window keeps)
    text_rag    the same embedder as Memory over the raw text of every turn, top `--k` turns: the upper bound
                optimem trades against, since it keeps all the text
    optimem     `memory.recall(question, k)`: the top `--k` turns, archived ones read back from their page
                images by the OCR model

Scores per trial: retrieval hit (the needle turn is in the top k / in the window), exact (the needle's value
appears verbatim in the context handed over), and for optimem the tier the needle was read from and the
reader's confidence. Tokens are counted with cl100k_base (the `quicktok-v1` package, MIT, which ships its
vocabulary; `pip install optimem[bench]`).

Outputs under `--out` (default niah_out/): results.json (every trial + `summary` keyed by system, each with
retrieval_hit_rate, exact_rate, mean_context_tokens), table.md, heatmap.png (depth x length per system).
Default haystack text ships in packages: chatterbot-corpus dialogues, Debian `fortunes` cookies if present,
and faker-made small talk; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import string
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from demos.haystack import _shown, default_pool, embedder_for, load_reader, token_counter  # noqa: F401 (re-exported)

__all__ = [
    "Needle",
    "SYSTEMS",
    "token_counter",
    "default_pool",
    "load_haystack",
    "build_haystack",
    "CachingEmbedder",
    "run",
    "main",
]

SYSTEMS = ("optimem", "truncation", "text_rag")
DEFAULT_LENGTHS = (2_000, 5_000, 10_000, 20_000)
FULL_LENGTHS = (2_000, 10_000, 50_000, 200_000, 1_000_000)
DEFAULT_DEPTHS = (0, 25, 50, 75, 100)

# ---------------------------------------------------------------------------------------------------
# tokens


# ---------------------------------------------------------------------------------------------------
# needles

# (what, of what): "the access code for vault 7"
_NEEDLE_KINDS = (
    ("access code", "vault"),
    ("door code", "storage unit"),
    ("booking reference", "hotel room"),
    ("serial number", "drone"),
    ("PIN", "safe deposit box"),
    ("gate code", "parking lot"),
    ("ticket number", "support case"),
    ("licence key", "workstation"),
)


def _random_value(rng: random.Random) -> str:
    up, dig = string.ascii_uppercase, string.digits
    return (
        "".join(rng.choice(up) for _ in range(2))
        + "-"
        + "".join(rng.choice(dig) for _ in range(4))
        + "-"
        + "".join(rng.choice(up) for _ in range(2))
    )


@dataclass(frozen=True)
class Needle:
    """One fact with a random value, e.g. the access code for vault 7 is QX-4471-MB."""

    what: str
    of: str
    value: str

    @property
    def statement(self) -> str:
        return f"By the way, the {self.what} for {self.of} is {self.value}. Please remember it for me."

    @property
    def question(self) -> str:
        return f"What is the {self.what} for {self.of}?"


def make_needles(n: int, rng: random.Random) -> list[Needle]:
    """n needles with distinct subjects (kind x number) and random values."""
    used: set[str] = set()
    out = []
    while len(out) < n:
        what, of = rng.choice(_NEEDLE_KINDS)
        of = f"{of} {rng.randint(2, 99)}"
        if (what, of) in used:
            continue
        used.add((what, of))
        out.append(Needle(what, of, _random_value(rng)))
    return out


# ---------------------------------------------------------------------------------------------------
# haystacks: lists of conversations, each a list of {"role", "text"}


def load_haystack(path: str) -> tuple[list[list[dict]], str]:
    """Conversations from a file: LoCoMo JSON (sessions in order), JSONL of {"role", "content"|"text"}
    messages (one conversation), or plain text (paragraphs, alternating user/assistant)."""
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"--haystack {path}: no such file; pass a LoCoMo JSON, a JSONL of messages or a text file")
    raw = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix == ".json":
        data = json.loads(raw)
        samples = data if isinstance(data, list) else [data]
        convs = []
        for s in samples:
            conv = s.get("conversation", s) if isinstance(s, dict) else None
            if not isinstance(conv, dict):
                raise SystemExit(f"{path}: expected LoCoMo samples with a 'conversation' of sessions")
            n = 1
            while f"session_{n}" in conv or f"session_{n}_date_time" in conv:
                session = [
                    {"role": str(t.get("speaker", "user")), "text": str(t.get("text", "")).strip()}
                    for t in conv.get(f"session_{n}") or []
                ]
                if session:
                    convs.append([t for t in session if t["text"]])
                n += 1
        desc = f"LoCoMo JSON {p.name} ({len(convs)} sessions)"
    elif p.suffix == ".jsonl":
        turns = []
        for line in raw.splitlines():
            if line.strip():
                m = json.loads(line)
                text = m.get("content", m.get("text", ""))
                if isinstance(text, str) and text.strip():
                    turns.append({"role": str(m.get("role", "user")), "text": text.strip()})
        convs = [turns[i : i + 8] for i in range(0, len(turns), 8)]
        desc = f"JSONL {p.name} ({len(turns)} messages)"
    else:
        paras = [q.strip() for q in raw.split("\n\n") if q.strip()]
        turns = [{"role": ("user", "assistant")[i % 2], "text": q[:4000]} for i, q in enumerate(paras)]
        convs = [turns[i : i + 8] for i in range(0, len(turns), 8)]
        desc = f"text {p.name} ({len(paras)} paragraphs)"
    convs = [c for c in convs if c]
    if not convs:
        raise SystemExit(f"{path}: no turns found")
    return convs, desc


def build_haystack(
    pool: Sequence[list[dict]],
    n_tokens: int,
    needles: Sequence[Needle],
    depths: Sequence[float],
    count: Callable[[str], int],
    rng: random.Random,
) -> tuple[list[dict], list[int], bool]:
    """Whole conversations drawn from the pool until the history holds n_tokens tokens, with needle i
    inserted as a user turn at depths[i] percent of it. Returns (turns, needle positions, pool recycled)."""
    order = list(range(len(pool)))
    rng.shuffle(order)
    turns: list[dict] = []
    total, i, recycled = 0, 0, False
    while total < n_tokens:
        if i == len(order):
            rng.shuffle(order)
            i, recycled = 0, True
        for t in pool[order[i]]:
            turns.append(dict(t))
            total += count(f"{t['role']}: {t['text']}")
        i += 1
    # insert deepest first so earlier insertions do not shift later positions
    spots = sorted(((round(d / 100 * len(turns)), k) for k, d in enumerate(depths)), reverse=True)
    positions = [0] * len(depths)
    for pos, k in spots:
        turns.insert(pos, {"role": "user", "text": needles[k].statement, "needle": k})
    for idx, t in enumerate(turns):
        if "needle" in t:
            positions[t["needle"]] = idx
    return turns, positions, recycled


# ---------------------------------------------------------------------------------------------------
# the three systems


class CachingEmbedder:
    """Wraps an Embedder; remembers document vectors by text so Memory and text_rag embed each chunk once."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self._cache: dict[str, np.ndarray] = {}

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for s in range(0, len(todo), 256):
            batch = todo[s : s + 256]
            for t, v in zip(batch, self.inner.embed_documents(batch)):
                self._cache[t] = np.asarray(v, dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)


def _fit(lines: Sequence[str], budget: int, count: Callable[[str], int]) -> tuple[str, int]:
    """Join lines in order while the whole stays within `budget` tokens; returns (context, tokens)."""
    kept: list[str] = []
    for line in lines:
        trial = "\n".join(kept + [line])
        if count(trial) > budget:
            break
        kept.append(line)
    ctx = "\n".join(kept)
    return ctx, count(ctx) if ctx else 0


class TextRag:
    """Top-k turns by the same embedder over the raw text (max over a turn's chunks, like Memory)."""

    def __init__(self, turns: Sequence[dict], embedder: CachingEmbedder) -> None:
        from optimem.embed import chunk_text

        owners, texts = [], []
        for i, t in enumerate(turns):
            for c in chunk_text(t["text"]):
                owners.append(i)
                texts.append(f"{t['role']}: {c}")
        self.owners = np.asarray(owners)
        self.vectors = embedder.embed_documents(texts)  # (chunks, dim), L2-normalised
        self.embedder = embedder

    def top(self, query: str, k: int) -> list[int]:
        q = self.embedder.embed_queries([query])[0]
        sims = self.vectors @ q
        best: dict[int, float] = {}
        for owner, s in zip(self.owners.tolist(), sims.tolist()):
            if s > best.get(owner, -math.inf):
                best[owner] = s
        return sorted(best, key=lambda i: -best[i])[:k]


def _char_precision(ref: str, hyp: str) -> float:
    from ocr_model.eval import char_precision

    return char_precision(ref, hyp)


# ---------------------------------------------------------------------------------------------------
# the run


def _views(spec: str) -> dict | None:
    """--views: 'default' -> None (the reader's DEFAULT_VIEWS), else ocr_model.eval.parse_views."""
    from ocr_model.eval import parse_views

    return None if spec == "default" else parse_views(spec)


class _Progress:
    """tqdm when installed, else a line per 10% on stderr."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.n, self.quiet, self._last = total, 0, quiet, -1
        self._bar = None
        if not quiet:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)
            except ImportError:
                pass

    def update(self, n: int = 1, desc: str | None = None) -> None:
        self.n += n
        if self._bar is not None:
            if desc:
                self._bar.set_description(desc, refresh=False)
            self._bar.update(n)
        elif not self.quiet and self.total and (10 * self.n // self.total) != self._last:
            self._last = 10 * self.n // self.total
            print(f"  {100 * self.n // self.total:3d}% {desc or ''}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run(args: argparse.Namespace) -> dict:
    """Run the sweep described by the parsed arguments; returns the results.json content."""
    import torch

    from optimem import ForgettingPolicy, Memory, Turn

    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    counter_name, encode, decode = token_counter()

    def count(text: str) -> int:
        return len(encode(text))

    lengths = (
        [int(x) for x in args.lengths.split(",")]
        if args.lengths
        else list(FULL_LENGTHS if args.full else DEFAULT_LENGTHS)
    )
    depths = [float(x) for x in args.depths.split(",")]
    pool, source = load_haystack(args.haystack) if args.haystack else default_pool(args.seed)
    reader, model_dir = load_reader(args.model, args.max_new_tokens, args.batch_size, args.views)
    embedder = CachingEmbedder(embedder_for(args.embedder))

    plans = []
    for length in lengths:
        needles = make_needles(len(depths), rng)
        turns, positions, recycled = build_haystack(pool, length, needles, depths, count, rng)
        plans.append((length, needles, turns, positions, recycled))
    # a recall (embed, search, read pages) costs about as much as 10 adds: weigh it so, for the bar's estimate
    bar = _Progress(sum(len(p[2]) for p in plans) + 10 * sum(len(p[1]) for p in plans), args.quiet)

    trials: list[dict] = []
    stores: list[dict] = []
    t_start = time.time()
    for length, needles, turns, positions, recycled in plans:
        strength = max(1.0, args.strength_fraction * len(turns))
        policy = ForgettingPolicy(initial_strength=strength)
        transcript = [f"{t['role']}: {t['text']}" for t in turns]
        rag = TextRag(turns, embedder)
        t0 = time.time()
        with Memory(model=reader, embedder=embedder, policy=policy, working_tokens=args.working_tokens,
                    verify=not args.no_verify) as memory:
            ids = []
            for t in turns:
                ids.append(memory.add(Turn(role=t["role"], text=t["text"])))
                bar.update(1, f"{length // 1000}k tokens: add")
            memory.consolidate()
            st = memory.stats()
            add_s = time.time() - t0
            # truncation window: the last `budget` tokens of the transcript
            all_tokens = encode("\n".join(transcript))
            window = decode(all_tokens[-args.budget :])
            window_tokens = min(args.budget, len(all_tokens))
            for needle, pos, depth in zip(needles, positions, depths, strict=True):
                base = {
                    "length": length,
                    "depth": depth,
                    "needle": asdict(needle),
                    "turn_index": pos,
                    "history_tokens": len(all_tokens),
                    "history_turns": len(turns),
                }
                trials.append(
                    {
                        **base,
                        "system": "truncation",
                        "retrieval_hit": needle.statement in window,
                        "exact": needle.value in window,
                        "context_tokens": window_tokens,
                    }
                )
                top = rag.top(needle.question, args.k)
                ctx, n_ctx = _fit([transcript[i] for i in top], args.budget, count)
                trials.append(
                    {
                        **base,
                        "system": "text_rag",
                        "retrieval_hit": pos in top,
                        "rank": top.index(pos) + 1 if pos in top else None,
                        "exact": needle.value in ctx,
                        "context_tokens": n_ctx,
                    }
                )
                tq = time.time()
                hits = memory.recall(needle.question, k=args.k, reinforce=False)
                recall_s = time.time() - tq
                ctx, n_ctx = _fit([f"{h.role}: {h.text or ''}" for h in hits], args.budget, count)
                mine = [h for h in hits if h.turn_id == ids[pos]]
                info = mine[0] if mine else memory.get(ids[pos], decode=False)
                trials.append(
                    {
                        **base,
                        "system": "optimem",
                        "retrieval_hit": bool(mine),
                        "rank": [h.turn_id for h in hits].index(ids[pos]) + 1 if mine else None,
                        "exact": needle.value in ctx,
                        "context_tokens": n_ctx,
                        "tier": info.tier,
                        "confidence": mine[0].confidence if mine else None,
                        "decoded_needle": mine[0].text if mine else None,
                        "needle_char_precision": _char_precision(needle.statement, mine[0].text or "")
                        if mine
                        else None,
                        "pages_read_tiers": sorted({h.tier for h in hits if h.tier != "verbatim"}),
                        "recall_seconds": round(recall_s, 3),
                    }
                )
                bar.update(10, f"{length // 1000}k tokens: recall")
            stores.append(
                {
                    "length": length,
                    "turns": len(turns),
                    "history_tokens": len(all_tokens),
                    "pool_recycled": recycled,
                    "strength": strength,
                    "turns_verbatim": st.turns_verbatim,
                    "turns_archived": st.turns_archived,
                    "pages": st.pages,
                    "visual_tokens": st.visual_tokens,
                    "archived_text_tokens_model": st.archived_text_tokens,
                    "compression": st.compression,
                    "bytes_on_disk": st.bytes_on_disk,
                    "add_seconds": round(add_s, 2),
                }
            )
    bar.close()

    summary = {}
    for system in SYSTEMS:
        rows = [t for t in trials if t["system"] == system]
        summary[system] = {
            "retrieval_hit_rate": float(np.mean([t["retrieval_hit"] for t in rows])),
            "exact_rate": float(np.mean([t["exact"] for t in rows])),
            "mean_context_tokens": float(np.mean([t["context_tokens"] for t in rows])),
            "trials": len(rows),
        }
    opt = [t for t in trials if t["system"] == "optimem"]
    by_tier: dict[str, dict] = {}
    for t in opt:
        d = by_tier.setdefault(t["tier"], {"needles": 0, "retrieved": 0, "exact": 0})
        d["needles"] += 1
        d["retrieved"] += bool(t["retrieval_hit"])
        d["exact"] += bool(t["exact"])
    summary["optimem"]["by_tier"] = by_tier
    # how well the needle turns read back from their pages (verbatim ones are exact by construction)
    cps = [
        t["needle_char_precision"] for t in opt if t["needle_char_precision"] is not None and t["tier"] != "verbatim"
    ]
    summary["optimem"]["archived_needle_char_precision"] = float(np.mean(cps)) if cps else None
    return {
        "summary": summary,
        "config": {
            "model": model_dir,
            "reader_max_new_tokens": args.max_new_tokens,
            "reader_views": getattr(reader, "views", None),
            "embedder": embedder.name,
            "token_counter": counter_name,
            "haystack": source,
            "lengths": lengths,
            "depths": depths,
            "budget_tokens": args.budget,
            "k": args.k,
            "working_tokens": args.working_tokens,
            "strength_fraction": args.strength_fraction,
            "seed": args.seed,
            "threads": args.threads,
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
            "seconds": round(time.time() - t_start, 1),
        },
        "stores": stores,
        "trials": trials,
    }


# ---------------------------------------------------------------------------------------------------
# outputs


def verdict(results: dict) -> str:
    """One line: did optimem hand over the exact needle, against the other systems, at what context size."""
    s, trials = results["summary"], results["trials"]

    def count(system: str) -> str:
        rows = [t for t in trials if t["system"] == system]
        return f"{sum(bool(t['exact']) for t in rows)}/{len(rows)}"

    return (
        f"optimem returned the exact needle in {count('optimem')} cases at "
        f"{s['optimem']['mean_context_tokens']:.0f} tokens on average; "
        + ", ".join(f"{x} {count(x)}" for x in SYSTEMS if x != "optimem")
        + f" (budget {results['config']['budget_tokens']} tokens)"
    )


HEATMAP_LEGEND = (
    "Heatmap: one cell per history length (x) and needle depth (y); colour = the needle's value was exact in the "
    "context handed over (green) or not (red); 'hit'/'miss' = the needle turn was retrieved (in the window, for "
    "truncation); optimem's letter = the tier its page sat at: V verbatim (still text), B base 1024 px, "
    "S small 640 px, T tiny 512 px, G gist 384 px."
)


def write_table(results: dict, path: Path) -> str:
    s, c = results["summary"], results["config"]
    lines = [
        f"# Needle in a haystack ({len(c['lengths'])} lengths x {len(c['depths'])} depths, "
        f"budget {c['budget_tokens']} tokens, k = {c['k']})",
        "",
        f"**{verdict(results)}**",
        "",
        f"model `{c['model']}` (max {c['reader_max_new_tokens']} new tokens per page, glyph-head views "
        f"{c.get('reader_views') or 'own tier only'}), embedder `{c['embedder']}`, "
        f"tokens counted with {c['token_counter']}, haystack: {c['haystack']}; {c['seconds']} s on {c['machine']}.",
        "",
        "| system | retrieval hit rate | exact rate | mean context tokens |",
        "|---|---|---|---|",
    ]
    for system in SYSTEMS:
        r = s[system]
        lines.append(
            f"| {system} | {r['retrieval_hit_rate']:.2f} | {r['exact_rate']:.2f} | {r['mean_context_tokens']:.0f} |"
        )
    lines += [
        "",
        "Per history length (exact rate; optimem retrieval hit rate in brackets):",
        "",
        "| history tokens | " + " | ".join(SYSTEMS) + " |",
        "|---|" + "---|" * len(SYSTEMS),
    ]
    for length in c["lengths"]:
        cells = []
        for system in SYSTEMS:
            rows = [t for t in results["trials"] if t["system"] == system and t["length"] == length]
            cell = f"{np.mean([t['exact'] for t in rows]):.2f}"
            if system == "optimem":
                cell += f" ({np.mean([t['retrieval_hit'] for t in rows]):.2f})"
            cells.append(cell)
        lines.append(f"| {length:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "optimem needles by the tier they sat at:",
        "",
        "| tier | needles | retrieved | exact |",
        "|---|---|---|---|",
    ]
    for tier, d in sorted(s["optimem"]["by_tier"].items()):
        lines.append(f"| {tier} | {d['needles']} | {d['retrieved']} | {d['exact']} |")
    mcp = s["optimem"].get("archived_needle_char_precision")
    if mcp is not None:
        lines += [
            "",
            f"Character precision of the retrieved archived needle turns as the model read them: {mcp:.3f} "
            "(mean; 1 - edit distance / length).",
        ]
    lines += [
        "",
        "Archive per history length:",
        "",
        "| history tokens | turns | archived turns | pages | visual tokens | archived text tokens (model) | "
        "compression | bytes on disk |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for st in results["stores"]:
        comp = f"{st['compression']:.1f}x" if st["compression"] else "-"
        pages = st["pages"] if isinstance(st["pages"], dict) else {"all": st["pages"]}
        shown = ", ".join(f"{n} {tier}" for tier, n in pages.items() if n) or "0"
        lines.append(
            f"| {st['history_tokens']:,} | {st['turns']} | {st['turns_archived']} | {shown} | "
            f"{st['visual_tokens']} | {st['archived_text_tokens_model']} | {comp} | {st['bytes_on_disk']:,} |"
        )
    lines += ["", HEATMAP_LEGEND]
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def write_heatmap(results: dict, path: Path) -> bool:
    """heatmap.png; False (and nothing written) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = results["config"]
    lengths, depths = c["lengths"], c["depths"]
    fig, axes = plt.subplots(1, len(SYSTEMS), figsize=(4.2 * len(SYSTEMS), 3.6), sharey=True)
    short = {"verbatim": "V", "base": "B", "small": "S", "tiny": "T", "gist": "G", "large": "L"}
    for ax, system in zip(axes, SYSTEMS):
        grid = np.full((len(depths), len(lengths)), np.nan)
        for t in results["trials"]:
            if t["system"] == system:
                i, j = depths.index(t["depth"]), lengths.index(t["length"])
                grid[i, j] = (
                    np.nanmean([grid[i, j], float(t["exact"])]) if not np.isnan(grid[i, j]) else float(t["exact"])
                )
        ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        for t in results["trials"]:
            if t["system"] == system:
                i, j = depths.index(t["depth"]), lengths.index(t["length"])
                mark = "hit" if t["retrieval_hit"] else "miss"
                label = f"{short.get(t.get('tier'), '')} {mark}" if system == "optimem" else mark
                ax.text(j, i, label, ha="center", va="center", fontsize=8)
        r = results["summary"][system]
        ax.set_title(f"{system}: exact {r['exact_rate']:.2f}, ~{r['mean_context_tokens']:.0f} tok", fontsize=10)
        ax.set_xticks(range(len(lengths)), [f"{n // 1000}k" for n in lengths])
        ax.set_xlabel("history length (cl100k tokens)")
        ax.set_yticks(range(len(depths)), [f"{d:g}%" for d in depths])
    axes[0].set_ylabel("needle depth (0% = oldest)")
    fig.suptitle(
        f"Needle in a haystack, same budget ({c['budget_tokens']} tokens); green = value exact in context; "
        "optimem tier V/B/S/T/G",
        fontsize=9,
    )
    fig.text(0.5, 0.01, "green = value exact in context, red = not; hit/miss = needle turn retrieved; optimem tier: "
             "V verbatim, B base 1024 px, S small 640, T tiny 512, G gist 384", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m demos.needle_in_haystack", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="OCR model checkpoint directory (default: the shipped model)")
    ap.add_argument(
        "--haystack",
        default=None,
        help="LoCoMo JSON, JSONL of {role, content} messages, or plain text (default: text from packages)",
    )
    ap.add_argument(
        "--lengths",
        default=None,
        help=f"comma-separated history lengths in cl100k tokens (default {','.join(map(str, DEFAULT_LENGTHS))})",
    )
    ap.add_argument(
        "--full", action="store_true", help=f"sweep {','.join(map(str, FULL_LENGTHS))} tokens (hours on a CPU)"
    )
    ap.add_argument(
        "--depths", default=",".join(map(str, DEFAULT_DEPTHS)), help="needle depths in percent, comma-separated"
    )
    ap.add_argument("--budget", type=int, default=1000, help="context tokens each system may hand the LLM")
    ap.add_argument("--k", type=int, default=3, help="turns recalled per question (optimem and text_rag)")
    ap.add_argument(
        "--working-tokens",
        type=int,
        default=1024,
        help="Memory's verbatim working-memory budget (model tokens); older turns become pages",
    )
    ap.add_argument(
        "--strength-fraction",
        type=float,
        default=0.5,
        help="forgetting-curve strength as a fraction of the haystack's turn count: the oldest turn "
        "ends at R = exp(-1/fraction) (0.5: R = 0.14, the tiny tier)",
    )
    ap.add_argument(
        "--max-new-tokens",
        type=int,
        default=600,
        help="cap on tokens decoded per page (a full page is ~1000; lower = faster, cuts page bottoms)",
    )
    ap.add_argument("--batch-size", type=int, default=4, help="pages decoded together")
    ap.add_argument("--views", type=_views, default=None,
                    help="glyph-head views: 'default' (the library's, the default), 'own' (each page from its own "
                         "tier's visual tokens only) or TIER=WEIGHT,... (see optimem.reader)")
    ap.add_argument(
        "--embedder",
        default="e5",
        choices=["e5", "minilm", "hashing"],
        help="retrieval embedder for optimem and text_rag (default: Memory's default, E5)",
    )
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0, help="haystack and needle seed")
    ap.add_argument("--no-verify", action="store_true",
                    help="page out without reading pages back (Memory(verify=False)); the default verifies")
    ap.add_argument("--out", default="niah_out", help="output directory")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.budget < 1 or args.k < 1 or args.working_tokens < 1 or not 0 < args.strength_fraction:
        ap.error("--budget, --k and --working-tokens must be >= 1 and --strength-fraction > 0")
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    table = write_table(results, out / "table.md")
    drew = write_heatmap(results, out / "heatmap.png")
    if not args.quiet:
        print(table)
        print(
            f"wrote {out / 'results.json'}, {out / 'table.md'}"
            + (f", {out / 'heatmap.png'}" if drew else " (no heatmap.png: pip install matplotlib)")
        )
    print(verdict(results))
    return results


if __name__ == "__main__":
    main()
