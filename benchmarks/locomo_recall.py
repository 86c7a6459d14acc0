"""LoCoMo through Memory: evidence hit@k / all@k per category, beside raw-text RAG, and read-back precision.

    python benchmarks/locomo_recall.py --locomo ../shared/data/locomo/locomo10.json [--model DIR]
        [--conversations 10] [--decode 40] [--embed-cache DIR] [--json locomo.json]

LoCoMo (CC BY-NC; evaluation only, never training) is 10 long two-person conversations with questions whose
evidence turns are listed by dia_id. Each conversation becomes its own Memory per mode, every turn going
through `Memory.add` in session order (text = the turn plus its shared photo's caption), with the default
embedder, working memory (4096 model tokens) and forgetting policy, so most turns are paged out to images
before any question is asked:
    agents        messages as agents send them: role "user" (the conversation's first speaker) or
                  "assistant", the speaker in `name`, the session's date as `timestamp`
    speaker-role  the old mode of this script: the speaker's name as the role, no name, no timestamp
Then for every question with evidence, `memory.recall(question, k=10, decode=False, reinforce=False)`.
Beside them, with the same dense embedder over the raw text (pure similarity, no Memory):
    raw RAG         each turn as "speaker: text"
    raw RAG + prev  each turn with the end of the previous turn before it (the text Memory embeds)
Reported per category (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial), for
categories 1-4 and for all, on conversations 0-4 (reported split), 5-9 (where the score weights were
tuned: docs/forgetting.md#search-score) and all:
    hit@k   share of questions with at least one evidence turn in the top k
    all@k   share with every evidence turn in the top k
Multilingual check (conversation 0 only): a few of its questions translated by hand into German, French,
Spanish and Chinese are asked of the agents-mode Memory, which holds the English turns.
Decoding: for the first `--decode` evidence turns that were archived (a subset: reading a page costs
seconds on a CPU), `memory.get(turn)` reads the turn back from its page with the OCR model; character
precision (ocr_model.eval.char_precision) against the original text is reported per tier.
`--embed-cache DIR` keeps the dense vectors of every text (and query) in DIR between runs (texts.json +
vectors.npy, raw text: put it in /tmp and delete it after), so a re-run only embeds what changed.
"""

from __future__ import annotations

import argparse
import datetime
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


def _session_time(text: str) -> float | None:
    """LoCoMo's '1:56 pm on 8 May, 2023' as epoch seconds (UTC), or None when it is not in that form."""
    try:
        return datetime.datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def load_locomo(path: str) -> list[dict]:
    """Per conversation: turns [(dia_id, speaker, text, timestamp, role)] in session order (role: 'user' for
    the conversation's first speaker, else 'assistant') and questions [(q, evidence, category)]."""
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"--locomo {path}: no such file; pass the LoCoMo JSON (locomo10.json)")
    convs = []
    for sample in json.loads(p.read_text(encoding="utf-8")):
        conv = sample["conversation"]
        sessions = sorted(int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k))
        turns = []
        for s in sessions:
            when = _session_time(str(conv.get(f"session_{s}_date_time", "")))
            for t in conv[f"session_{s}"]:
                text = str(t["text"])
                if t.get("blip_caption"):
                    text += f" [shares a photo of {t['blip_caption']}]"
                role = "user" if t["speaker"] == conv.get("speaker_a", turns[0][1] if turns else t["speaker"]) else "assistant"
                turns.append((t["dia_id"], str(t["speaker"]), text, when, role))
        ids = {t[0] for t in turns}
        qs = []
        for q in sample.get("qa", []):
            evidence = sorted({e for ev in q.get("evidence", []) for e in _DIA.findall(str(ev))} & ids)
            if evidence:  # a few questions list no (or malformed) evidence: they cannot be scored
                qs.append((str(q["question"]), evidence, int(q.get("category", 0))))
        convs.append({"id": sample.get("sample_id", str(len(convs))), "turns": turns, "questions": qs})
    return convs


# A few questions of conversation 0, translated by hand (the turns stay English).
TRANSLATED = {
    "When did Caroline go to the LGBTQ support group?": {
        "de": "Wann ist Caroline zur LGBTQ-Selbsthilfegruppe gegangen?",
        "fr": "Quand Caroline est-elle allée au groupe de soutien LGBTQ ?",
        "es": "¿Cuándo fue Caroline al grupo de apoyo LGBTQ?",
        "zh": "Caroline什么时候去了LGBTQ互助小组？",
    },
    "When did Melanie paint a sunrise?": {
        "de": "Wann hat Melanie einen Sonnenaufgang gemalt?",
        "fr": "Quand Melanie a-t-elle peint un lever de soleil ?",
        "es": "¿Cuándo pintó Melanie un amanecer?",
        "zh": "Melanie什么时候画了一幅日出？",
    },
    "What did Caroline research?": {
        "de": "Worüber hat Caroline recherchiert?",
        "fr": "Sur quoi Caroline a-t-elle fait des recherches ?",
        "es": "¿Qué investigó Caroline?",
        "zh": "Caroline研究了什么？",
    },
    "When did Melanie run a charity race?": {
        "de": "Wann ist Melanie bei einem Wohltätigkeitslauf mitgelaufen?",
        "fr": "Quand Melanie a-t-elle couru une course caritative ?",
        "es": "¿Cuándo corrió Melanie una carrera benéfica?",
        "zh": "Melanie什么时候参加了慈善跑？",
    },
    "When is Melanie planning on going camping?": {
        "de": "Wann plant Melanie, campen zu gehen?",
        "fr": "Quand Melanie prévoit-elle d'aller camper ?",
        "es": "¿Cuándo planea Melanie ir de campamento?",
        "zh": "Melanie打算什么时候去露营？",
    },
    "When did Caroline give a speech at a school?": {
        "de": "Wann hat Caroline eine Rede an einer Schule gehalten?",
        "fr": "Quand Caroline a-t-elle fait un discours dans une école ?",
        "es": "¿Cuándo dio Caroline un discurso en una escuela?",
        "zh": "Caroline什么时候在一所学校发表了演讲？",
    },
    "When did Melanie sign up for a pottery class?": {
        "de": "Wann hat sich Melanie für einen Töpferkurs angemeldet?",
        "fr": "Quand Melanie s'est-elle inscrite à un cours de poterie ?",
        "es": "¿Cuándo se apuntó Melanie a una clase de cerámica?",
        "zh": "Melanie什么时候报名了陶艺课？",
    },
    "When did Melanie go to the museum?": {
        "de": "Wann war Melanie im Museum?",
        "fr": "Quand Melanie est-elle allée au musée ?",
        "es": "¿Cuándo fue Melanie al museo?",
        "zh": "Melanie什么时候去了博物馆？",
    },
    "When did Caroline have a picnic?": {
        "de": "Wann hat Caroline ein Picknick gemacht?",
        "fr": "Quand Caroline a-t-elle fait un pique-nique ?",
        "es": "¿Cuándo hizo Caroline un picnic?",
        "zh": "Caroline什么时候去野餐了？",
    },
    "When did Caroline go to the adoption meeting?": {
        "de": "Wann ist Caroline zu dem Adoptionstreffen gegangen?",
        "fr": "Quand Caroline est-elle allée à la réunion sur l'adoption ?",
        "es": "¿Cuándo fue Caroline a la reunión de adopción?",
        "zh": "Caroline什么时候去参加了领养说明会？",
    },
}


class VectorCache:
    """Wraps a dense Embedder; remembers document and query vectors by text, optionally in a directory."""

    def __init__(self, inner, directory: str | None = None) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.dir = Path(directory) if directory else None
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        if self.dir and (self.dir / "texts.json").is_file():
            keys = json.loads((self.dir / "texts.json").read_text(encoding="utf-8"))
            vecs = np.load(self.dir / "vectors.npy")
            if keys.get("embedder") == self.name and len(keys["keys"]) == len(vecs):
                self._cache = {(k, t): v for (k, t), v in zip(keys["keys"], vecs)}

    def _get(self, kind: str, texts, fn) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if (kind, t) not in self._cache))
        for s in range(0, len(todo), 256):
            batch = todo[s : s + 256]
            for t, v in zip(batch, fn(batch)):
                self._cache[(kind, t)] = np.asarray(v, dtype=np.float32)
        return np.stack([self._cache[(kind, t)] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_documents(self, texts):
        return self._get("d", list(texts), self.inner.embed_documents)

    def embed_queries(self, texts):
        return self._get("q", list(texts), self.inner.embed_queries)

    def save(self) -> None:
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = list(self._cache)
        (self.dir / "texts.json").write_text(json.dumps({"embedder": self.name, "keys": keys}), encoding="utf-8")
        np.save(self.dir / "vectors.npy", np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, self.dim)))


def raw_rank(docs: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(docs @ q), kind="stable")[:k].tolist()


def score(ranked: Sequence[int], evidence: Sequence[int]) -> dict:
    out = {}
    for k in KS:
        top = set(ranked[:k])
        out[f"hit@{k}"] = any(e in top for e in evidence)
        out[f"all@{k}"] = all(e in top for e in evidence)
    return out


MODES = ("agents", "speaker-role")
SYSTEMS = ("agents", "speaker-role", "raw", "raw+prev")
LABELS = {
    "agents": "optimem, agents' messages (role + name)",
    "speaker-role": "optimem, speaker as role (old mode)",
    "raw": "raw-text RAG, same dense embedder",
    "raw+prev": "raw-text RAG, turn + end of previous",
}
SPLITS = {"0-4 (reported)": range(0, 5), "5-9 (tuning)": range(5, 10), "all": range(0, 10**6)}
GROUPS = {"1": (1,), "2": (2,), "3": (3,), "4": (4,), "5": (5,), "1-4": (1, 2, 3, 4), "all": (1, 2, 3, 4, 5)}


def _message(mode: str, speaker: str, text: str, when: float | None, role: str):
    if mode == "agents":
        msg = {"role": role, "name": speaker, "content": text}
        return msg | ({"timestamp": when} if when is not None else {})
    from optimem import Turn

    return Turn(role=speaker, text=text)  # any role goes through a Turn (messages take the documented roles)


def run(args: argparse.Namespace) -> dict:
    import torch

    from demos.haystack import embedder_for, load_reader
    from ocr_model.eval import char_precision
    from optimem import Memory
    from optimem.embed import HybridEmbedder
    from optimem.retrieval import document_texts

    torch.set_num_threads(args.threads)
    convs = load_locomo(args.locomo)[: args.conversations]
    reader, model_dir = load_reader(args.model, args.max_new_tokens, 4)
    dense = VectorCache(embedder_for(args.embedder), args.embed_cache)
    emb = HybridEmbedder(dense) if args.lexical else dense
    rows, reads, multi = [], [], []
    t_start = time.time()
    for ci, conv in enumerate(convs):
        t0 = time.time()
        index_of = {t[0]: i for i, t in enumerate(conv["turns"])}
        raw_docs = {
            "raw": dense.embed_documents([f"{sp}: {tx}" for _, sp, tx, _, _ in conv["turns"]]),
            "raw+prev": dense.embed_documents(
                [
                    document_texts(tx, sp, (conv["turns"][i - 1][1], conv["turns"][i - 1][2]) if i else None)[0]
                    for i, (_, sp, tx, _, _) in enumerate(conv["turns"])
                ]
            ),
        }
        qvecs = dense.embed_queries([q for q, _, _ in conv["questions"]])
        per_q = [{} for _ in conv["questions"]]
        for mode in MODES:
            with Memory(model=reader, embedder=emb, verify=False) as m:  # retrieval; read-back below
                tid = [m.add(_message(mode, sp, tx, when, role)) for _, sp, tx, when, role in conv["turns"]]
                m.consolidate()
                st = m.stats()
                for qi, (q, evidence, _) in enumerate(conv["questions"]):
                    hits = m.recall(q, k=max(KS), decode=False, reinforce=False)
                    per_q[qi][mode] = score([h.turn_id for h in hits], [tid[index_of[e]] for e in evidence])
                if mode == "agents" and ci == 0:
                    for q, evidence, cat in conv["questions"]:
                        for lang, tq in TRANSLATED.get(q, {}).items():
                            hits = m.recall(tq, k=max(KS), decode=False, reinforce=False)
                            got = score([h.turn_id for h in hits], [tid[index_of[e]] for e in evidence])
                            multi.append({"question": q, "lang": lang, "translated": tq, **got})
                        if q in TRANSLATED:
                            hits = m.recall(q, k=max(KS), decode=False, reinforce=False)
                            got = score([h.turn_id for h in hits], [tid[index_of[e]] for e in evidence])
                            multi.append({"question": q, "lang": "en", "translated": q, **got})
                if mode == "agents":  # decode a subset of archived evidence turns with the model
                    seen = set()
                    for _, evidence, _ in conv["questions"]:
                        for e in evidence:
                            if len(reads) >= args.decode * (ci + 1) // len(convs) or e in seen:
                                continue
                            seen.add(e)
                            t_id = tid[index_of[e]]
                            if m.get(t_id, decode=False).tier == "verbatim":
                                continue
                            t1 = time.time()
                            got = m.get(t_id)
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
        for qi, (q, evidence, cat) in enumerate(conv["questions"]):
            ev = [index_of[e] for e in evidence]
            for system, docs in raw_docs.items():
                per_q[qi][system] = score(raw_rank(docs, qvecs[qi], max(KS)), ev)
            rows.append({"conversation": conv["id"], "index": ci, "category": cat, "question": q,
                         "evidence": evidence, **per_q[qi]})
        dense.save()
        print(
            f"  {conv['id']}: {len(conv['turns'])} turns ({st.turns_archived} archived, pages {dict(st.pages)}), "
            f"{len(conv['questions'])} questions, {time.time() - t0:.0f} s",
            file=sys.stderr,
        )
    summary: dict = {}
    for split, idx in SPLITS.items():
        for group, cats in GROUPS.items():
            sel = [r for r in rows if r["index"] in idx and r["category"] in cats]
            if not sel:
                continue
            summary.setdefault(split, {})[group] = {"questions": len(sel)} | {
                system: {key: float(np.mean([r[system][key] for r in sel])) for key in sel[0][system]}
                for system in SYSTEMS
            }
    summary["multilingual"] = {
        lang: {key: float(np.mean([r[key] for r in multi if r["lang"] == lang])) for key in ("hit@5", "hit@10", "all@10")}
        | {"questions": sum(r["lang"] == lang for r in multi)}
        for lang in dict.fromkeys(r["lang"] for r in multi)
    }
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
        "multilingual": multi,
        "reads": reads,
    }


def table(res: dict) -> str:
    s, c = res["summary"], res["config"]
    lines = [f"LoCoMo, {c['conversations']} conversations, Memory's embedder `{c['embedder']}`, model `{c['model']}`; "
             f"{c['seconds']} s."]
    for split in SPLITS:
        if split not in s:
            continue
        lines += ["", f"Conversations {split}:", "",
                  "| category | questions | system | " + " | ".join(f"hit@{k}" for k in KS) + " | "
                  + " | ".join(f"all@{k}" for k in KS) + " |",
                  "|---|---|---|" + "---|" * (2 * len(KS))]
        for group, d in s[split].items():
            for system in SYSTEMS:
                m = d[system]
                lines.append(f"| {group} | {d['questions']} | {LABELS[system]} | "
                             + " | ".join(f"{m[f'hit@{k}']:.3f}" for k in KS) + " | "
                             + " | ".join(f"{m[f'all@{k}']:.3f}" for k in KS) + " |")
    if s.get("multilingual"):
        lines += ["", "Multilingual check (conversation 0, English turns, questions translated by hand; agents mode):",
                  "", "| question language | questions | hit@5 | hit@10 | all@10 |", "|---|---|---|---|---|"]
        for lang, d in s["multilingual"].items():
            lines.append(f"| {lang} | {d['questions']} | {d['hit@5']:.3f} | {d['hit@10']:.3f} | {d['all@10']:.3f} |")
    if s.get("decoded_evidence"):
        lines += ["", "Archived evidence turns read back by the model (subset):", "",
                  "| tier | turns | char precision | confidence | s per turn (median) |", "|---|---|---|---|---|"]
        for tier, d in sorted(s["decoded_evidence"].items()):
            lines.append(f"| {tier} | {d['turns']} | {d['char_precision']:.3f} | {d['confidence']:.3f} | "
                         f"{d['seconds_per_turn']:.1f} |")
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
    ap.add_argument("--no-lexical", dest="lexical", action="store_false",
                    help="Memory without the hashed lexical half (HybridEmbedder): the dense embedder alone")
    ap.add_argument("--embed-cache", default=None, help="keep dense vectors of texts here between runs (e.g. /tmp/...)")
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
