"""LoCoMo through Memory: recall@1/5/10 of evidence turns, and how well archived evidence reads back.

    python benchmarks/locomo_recall.py --locomo path/to/locomo10.json [--model DIR]
        [--conversations 10] [--decode 40] [--json locomo.json]

LoCoMo (CC BY-NC; evaluation only, never training) is 10 long two-person conversations with questions whose
evidence turns are listed by dia_id. Each conversation becomes its own Memory: every turn goes through
`Memory.add` in session order (role = speaker, text = the turn plus its shared photo's caption, as
benchmarks/embedder_choice.py embeds it), with the default working memory (4096 model tokens) and forgetting
policy, so most turns are paged out to images before any question is asked. Then for every question with
evidence, `memory.recall(question, k=10, decode=False)` ranks turns by Memory's score (similarity with the
retention discount). Reported:
    hit@k   share of questions with at least one evidence turn in the top k
    all@k   share with every evidence turn in the top k
beside the same embedder over the raw text of every turn (pure similarity: the retrieval upper bound).
Decoding: for the first `--decode` evidence turns that were archived (a subset: reading a page costs
seconds on a CPU), `memory.get(turn)` reads the turn back from its page with the OCR model; character
precision (ocr_model.eval.char_precision) against the original text is reported per tier.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

KS = (1, 5, 10)
_DIA = re.compile(r"D\d+:\d+")


def load_locomo(path: str) -> list[dict]:
    """Per conversation: turns [(dia_id, role, text)] in session order and questions [(q, evidence, category)]."""
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"--locomo {path}: no such file; pass the LoCoMo JSON (locomo10.json)")
    convs = []
    for sample in json.loads(p.read_text(encoding="utf-8")):
        conv = sample["conversation"]
        sessions = sorted(int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k))
        turns = []
        for s in sessions:
            for t in conv[f"session_{s}"]:
                text = str(t["text"])
                if t.get("blip_caption"):
                    text += f" [shares a photo of {t['blip_caption']}]"
                turns.append((t["dia_id"], str(t["speaker"]), text))
        ids = {d for d, _, _ in turns}
        qs = []
        for q in sample.get("qa", []):
            evidence = sorted({e for ev in q.get("evidence", []) for e in _DIA.findall(str(ev))} & ids)
            if evidence:  # a few questions list no (or malformed) evidence: they cannot be scored
                qs.append((str(q["question"]), evidence, int(q.get("category", 0))))
        convs.append({"id": sample.get("sample_id", str(len(convs))), "turns": turns, "questions": qs})
    return convs


def score(ranked: Sequence[int], evidence: Sequence[int]) -> dict:
    out = {}
    for k in KS:
        top = set(ranked[:k])
        out[f"hit@{k}"] = any(e in top for e in evidence)
        out[f"all@{k}"] = all(e in top for e in evidence)
    return out


def run(args: argparse.Namespace) -> dict:
    import torch

    from demos.needle_in_haystack import CachingEmbedder, TextRag, embedder_for, load_reader
    from ocr_model.eval import char_precision
    from optimem import Memory, Turn

    torch.set_num_threads(args.threads)
    convs = load_locomo(args.locomo)[: args.conversations]
    reader, model_dir = load_reader(args.model, args.max_new_tokens, 4)
    emb = CachingEmbedder(embedder_for(args.embedder))
    rows, reads = [], []
    t_start = time.time()
    for ci, conv in enumerate(convs):
        t0 = time.time()
        with Memory(model=reader, embedder=emb, verify=False) as m:  # retrieval; read-back below
            tid = {}
            for dia, role, text in conv["turns"]:
                tid[dia] = m.add(Turn(role=role, text=text))
            m.consolidate()
            st = m.stats()
            index_of = {d: i for i, (d, _, _) in enumerate(conv["turns"])}
            rag = TextRag([{"role": r, "text": t} for _, r, t in conv["turns"]], emb)
            for q, evidence, cat in conv["questions"]:
                hits = m.recall(q, k=max(KS), decode=False, reinforce=False)
                mem = score([h.turn_id for h in hits], [tid[e] for e in evidence])
                raw = score(rag.top(q, max(KS)), [index_of[e] for e in evidence])
                rows.append(
                    {
                        "conversation": conv["id"],
                        "category": cat,
                        "question": q,
                        "evidence": evidence,
                        "optimem": mem,
                        "raw_text": raw,
                    }
                )
            # decode a subset of archived evidence turns with the model
            seen = set()
            for _, evidence, _ in conv["questions"]:
                for e in evidence:
                    if len(reads) >= args.decode * (ci + 1) // len(convs) or e in seen:
                        continue
                    seen.add(e)
                    info = m.get(tid[e], decode=False)
                    if info.tier == "verbatim":
                        continue
                    t1 = time.time()
                    got = m.get(tid[e])
                    ref = conv["turns"][index_of[e]][2]
                    reads.append(
                        {
                            "conversation": conv["id"],
                            "dia_id": e,
                            "tier": got.tier,
                            "confidence": got.confidence,
                            "char_precision": char_precision(ref, got.text or ""),
                            "seconds": time.time() - t1,
                            "reference": ref,
                            "decoded": got.text,
                        }
                    )
            print(
                f"  {conv['id']}: {len(conv['turns'])} turns ({st.turns_archived} archived, pages {dict(st.pages)}), "
                f"{len(conv['questions'])} questions, {time.time() - t0:.0f} s",
                file=sys.stderr,
            )
    summary: dict = {}
    for name, sel in (("all", rows), ("categories 1-4", [r for r in rows if 1 <= r["category"] <= 4])):
        summary[name] = {"questions": len(sel)}
        for system in ("optimem", "raw_text"):
            summary[name][system] = (
                {key: float(np.mean([r[system][key] for r in sel])) for key in sel[0][system]} if sel else {}
            )
    tiers: dict = {}
    for r in reads:
        tiers.setdefault(r["tier"], []).append(r)
    summary["decoded_evidence"] = {
        t: {
            "turns": len(v),
            "char_precision": float(np.mean([r["char_precision"] for r in v])),
            "confidence": float(np.mean([r["confidence"] or 0.0 for r in v])),
            "seconds_per_turn": float(np.median([r["seconds"] for r in v])),
        }
        for t, v in tiers.items()
    }
    return {
        "summary": summary,
        "config": {
            "locomo": args.locomo,
            "conversations": len(convs),
            "model": model_dir,
            "embedder": emb.name,
            "max_new_tokens": args.max_new_tokens,
            "decode_subset": args.decode,
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
            "seconds": round(time.time() - t_start, 1),
        },
        "questions": rows,
        "reads": reads,
    }


def table(res: dict) -> str:
    s, c = res["summary"], res["config"]
    lines = [
        f"LoCoMo, {c['conversations']} conversations, embedder `{c['embedder']}`, model `{c['model']}`; "
        f"{c['seconds']} s.",
        "",
        "| questions | system | "
        + " | ".join(f"hit@{k}" for k in KS)
        + " | "
        + " | ".join(f"all@{k}" for k in KS)
        + " |",
        "|---|---|" + "---|" * (2 * len(KS)),
    ]
    for name in ("all", "categories 1-4"):
        for system, label in (("optimem", "optimem (Memory.recall)"), ("raw_text", "same embedder, raw text")):
            d = s[name][system]
            if not d:
                continue
            lines.append(
                f"| {name} ({s[name]['questions']}) | {label} | "
                + " | ".join(f"{d[f'hit@{k}']:.3f}" for k in KS)
                + " | "
                + " | ".join(f"{d[f'all@{k}']:.3f}" for k in KS)
                + " |"
            )
    lines += [
        "",
        "Archived evidence turns read back by the model (subset):",
        "",
        "| tier | turns | char precision | confidence | s per turn (median) |",
        "|---|---|---|---|---|",
    ]
    for tier, d in sorted(s["decoded_evidence"].items()):
        lines.append(
            f"| {tier} | {d['turns']} | {d['char_precision']:.3f} | {d['confidence']:.3f} | "
            f"{d['seconds_per_turn']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--locomo", required=True, help="path of locomo10.json (evaluation only)")
    ap.add_argument("--model", default=None, help="OCR model checkpoint directory (default: the shipped model)")
    ap.add_argument("--conversations", type=int, default=10, help="how many conversations to run")
    ap.add_argument("--decode", type=int, default=40, help="archived evidence turns to read back with the model")
    ap.add_argument("--max-new-tokens", type=int, default=1200, help="cap on tokens decoded per page")
    ap.add_argument("--embedder", default="e5", choices=["e5", "minilm", "hashing"], help="retrieval embedder")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="torch CPU threads")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    res = run(args)
    print(table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1), encoding="utf-8")
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
