"""Verified page-out on real-world text nobody here wrote: how often the plain drawing reads back exactly, how
well the per-turn confidence tells exact from inexact readings, and what the lossless fallback costs.

    python benchmarks/verify_mixed.py [--model DIR] [--turns 12] [--tier base]

Turns per kind (evaluation only, never trained on): translations from the system's gettext catalogs (.mo
files under /usr/share/locale: Latin-script languages with accents, Greek and Cyrillic, Chinese/Japanese/
Korean, Arabic/Hebrew/Hindi/Thai, and British English), Python source of installed third-party packages in
```python fences, and held-out chat lines with emoji. Each kind is drawn as Memory draws it (dense pages),
read back at `--tier` as stored (16 greys), and then paged out through the verified path
(optimem.pageout.draw_verified). Printed as JSON per kind: plain-drawing exact share and character
precision, the AUROC of the per-turn confidence (exact vs not, plain drawing), the share below the
documented threshold among inexact and among exact turns, the final exact share, the forms used, pages
read, seconds, and the cells the fallback drawings add.
"""
from __future__ import annotations

import argparse
import gettext
import glob
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = {
    "english": ["en_GB"],
    "latin_accents": ["de", "fr", "es", "pl", "cs", "tr", "hu", "ro", "pt_BR", "sv", "vi"],
    "greek_cyrillic": ["el", "ru", "uk", "bg", "sr"],
    "cjk": ["zh_CN", "zh_TW", "ja", "ko"],
    "other_scripts": ["ar", "he", "hi", "th"],
}
EMOJI = "😀😂😍👍🙏🎉🔥❤️✨😊🤔😢💯🚀👀✅😎🙌💪🥰"
THRESHOLD = 0.5  # the calibrated per-turn confidence below which docs/api.md says a misread is more likely than not


def catalog_strings(langs: list[str], rng: random.Random, limit: int = 4000) -> list[str]:
    out = []
    for lang in langs:
        for mo in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo"))[:40]:
            try:
                with open(mo, "rb") as f:
                    cat = gettext.GNUTranslations(f)._catalog  # msgid -> msgstr
            except (OSError, Exception):  # noqa: BLE001 - a catalog we cannot parse is skipped
                continue
            for k, v in cat.items():
                if k and isinstance(v, str) and 8 <= len(v) <= 300 and "\x00" not in v:
                    out.append(v)
    rng.shuffle(out)
    return out[:limit]


def code_blocks(rng: random.Random, n: int) -> list[str]:
    import pygments  # a third-party package: not in the training corpus (the standard library is)

    files = sorted(Path(pygments.__file__).parent.rglob("*.py"))
    out = []
    while len(out) < n:
        lines = rng.choice(files).read_text(encoding="utf-8", errors="replace").split("\n")
        a = rng.randrange(max(1, len(lines) - 12))
        body = "\n".join(lines[a:a + rng.randint(4, 12)]).strip("\n")
        if body.strip():
            out.append(f"Here is the code:\n```python\n{body}\n```")
    return out


def turns_for(kind: str, rng: random.Random, n: int) -> list[str]:
    if kind == "code":
        return code_blocks(rng, n)
    if kind == "emoji":
        base = catalog_strings(["en_GB"], rng)
        return [" ".join(w + (rng.choice(EMOJI) if rng.random() < 0.3 else "") for w in base[i].split())
                + " " + rng.choice(EMOJI) for i in range(n)]
    pool = catalog_strings(KINDS[kind], rng)
    return [" ".join(pool[(i * 5 + j) % len(pool)] for j in range(rng.randint(1, 4))) for i in range(n)]


def auroc(pos: list[float], neg: list[float]) -> float | None:
    """P(confidence of an exact reading > that of an inexact one); None without both kinds."""
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--turns", type=int, default=12, help="turns per kind")
    ap.add_argument("--tier", default="base", help="tier the pages are written and read at")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = ap.parse_args(argv)
    from ocr_model.page import Turn, cells_used, render_turns
    from ocr_model.page.codec import as_stored
    from ocr_model.reader import load
    from optimem.pageout import char_precision, draw_verified, read_turn_texts

    reader = load(args.model)
    rng = random.Random(args.seed)
    report = {}
    for kind in [*KINDS, "code", "emoji"]:
        texts = turns_for(kind, rng, args.turns)
        turns = [Turn("user" if i % 2 == 0 else "assistant", t, id=i + 1) for i, t in enumerate(texts)]
        pages = render_turns(turns)
        t0 = time.perf_counter()
        readings = reader.read([as_stored(p.image, args.tier) for p in pages], args.tier)
        plain_s = time.perf_counter() - t0
        got, confs = read_turn_texts(readings, [p.layout for p in pages])
        exact, cps, pos, neg = 0, [], [], []
        for t in turns:
            g = got.get(t.id, "")
            c = min(confs.get(t.id, [0.0]))
            cps.append(char_precision(t.text, g))
            (pos if g == t.text else neg).append(c)
            exact += g == t.text
        t0 = time.perf_counter()
        drawn = draw_verified(turns, reader, first_turn_number=1, tier=args.tier, levels=16)
        verify_s = time.perf_counter() - t0
        forms: dict[str, int] = {}
        for c in drawn.checks.values():
            forms[c.form] = forms.get(c.form, 0) + 1
        report[kind] = {
            "turns": len(turns), "plain_exact_share": exact / len(turns), "plain_char_precision": sum(cps) / len(cps),
            "confidence_auroc": auroc(pos, neg),
            "inexact_below_threshold": (sum(c < THRESHOLD for c in neg) / len(neg)) if neg else None,
            "exact_below_threshold": (sum(c < THRESHOLD for c in pos) / len(pos)) if pos else None,
            "final_exact_share": sum(c.exact for c in drawn.checks.values()) / len(turns),
            "kept_verbatim": len(drawn.verbatim), "forms": forms,
            "pages_plain": len(pages), "pages_final": len(drawn.pages), "pages_read": drawn.reads,
            "cells_plain": sum(cells_used(p) for p in pages), "cells_final": sum(cells_used(p) for p in drawn.pages),
            "seconds_read_plain": round(plain_s, 2), "seconds_verified_pageout": round(verify_s, 2),
            "confidence_exact": sorted(round(c, 4) for c in pos), "confidence_inexact": sorted(round(c, 4) for c in neg),
        }
        print(json.dumps({kind: report[kind]}), flush=True)
    pos_all = [k for k in report.values()]
    ex = [c for r in pos_all for c in r["confidence_exact"]]
    inex = [c for r in pos_all for c in r["confidence_inexact"]]
    print(json.dumps({"pooled_confidence_auroc": auroc(ex, inex),
                      "inexact_below": {t: sum(c < t for c in inex) / max(1, len(inex)) for t in (0.9, 0.95, 0.98, 0.99)},
                      "exact_below": {t: sum(c < t for c in ex) / max(1, len(ex)) for t in (0.9, 0.95, 0.98, 0.99)}}))
    print(json.dumps({"all": {"final_exact_share": sum(r["final_exact_share"] * r["turns"] for r in pos_all)
                               / sum(r["turns"] for r in pos_all),
                              "plain_exact_share": sum(r["plain_exact_share"] * r["turns"] for r in pos_all)
                              / sum(r["turns"] for r in pos_all)}}))


if __name__ == "__main__":
    main()
