"""Page-out through Memory on real conversations: how full the pages are, what verification costs, how the
archived turns read back.

    python benchmarks/pageout.py --locomo path/to/locomo10.json --conversations 2 [--model DIR]
    python benchmarks/pageout.py --locomo path/to/locomo10.json --conversations 10 --density-only

LoCoMo (evaluation only) turns are added as agents send them (OpenAI-style messages: role user/assistant, the
speaker in `name`), with the default working memory. Printed as JSON: per run (verify on, then off, on the
same turns) the pages written, cells used per page (of 75 x 38 = 2,850), turns per page, PNG bytes per
archived turn, seconds spent in add_many, pages read to verify, the share of archived turns that read back
exactly at the top tier, the forms used (plain / escaped / ascii) and the turns kept verbatim because no
drawing read back; then every archived turn read back with get(): character precision and exact share.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def layout_cells(layout_json: str) -> int:
    """Cells used on a stored page: per row, up to the end of its last piece."""
    d = json.loads(layout_json)
    ends: dict[int, int] = {}
    for p in d["pieces"]:
        row, col, width = p[2], p[3], p[4]
        ends[row] = max(ends.get(row, 0), col + width)
    return sum(ends.values())


def run_one(turns: list[dict], reader, verify: bool, working_tokens: int) -> dict:
    from optimem import HashingEmbedder, Memory
    from optimem.pageout import char_precision

    with tempfile.TemporaryDirectory() as tmp, Memory(Path(tmp) / "s", model=reader, embedder=HashingEmbedder(64),
                                                       verify=verify, working_tokens=working_tokens) as m:
        t0 = time.perf_counter()
        ids = m.add_many(turns)
        seconds = time.perf_counter() - t0
        pages = m._archive.pages()
        cells = [layout_cells(p.layout) for p in pages]
        archived = [i for i, r in m._archive.turns(ids).items() if r.state == "archived"]
        forms: dict[str, int] = {}
        for p in pages:
            for c in json.loads(p.layout).get("checks", {}).values():
                forms[c[4]] = forms.get(c[4], 0) + 1
        png = sum(len(m._archive.read_page(p)) for p in pages)
        stats = m.stats()
        out = {"verify": verify, "turns": len(ids), "archived": len(archived), "pages": len(pages),
               "cells_per_page": sum(cells) / max(1, len(cells)), "turns_per_page": len(archived) / max(1, len(pages)),
               "png_bytes_per_archived_turn": png / max(1, len(archived)), "add_seconds": round(seconds, 2),
               "exact_share": stats.exact_share, "forms": forms, "kept_verbatim": stats.unarchivable}
        if verify:
            text_of = {i: t["content"] for i, t in zip(ids, turns)}
            cps, exact = [], 0
            for tid in archived:
                got = m.get(tid).text or ""
                cps.append(char_precision(text_of[tid], got))
                exact += got == text_of[tid]
            out["read_back"] = {"turns": len(archived), "char_precision": sum(cps) / max(1, len(cps)),
                                "exact_share": exact / max(1, len(archived))}
        return out


def density(args) -> None:
    """Cells and turns per page of every conversation paged out through Memory (verify=False)."""
    from benchmarks.locomo_recall import load_locomo
    from optimem import HashingEmbedder, Memory

    cells, per_conv = [], []
    for conv in load_locomo(args.locomo)[: args.conversations]:
        turns = [{"role": role, "content": text, "name": spk} | ({"timestamp": when} if when is not None else {})
                 for _, spk, text, when, role in conv["turns"]]
        with tempfile.TemporaryDirectory() as tmp, Memory(Path(tmp) / "s", model=args.model, verify=False,
                                                           embedder=HashingEmbedder(64),
                                                           working_tokens=args.working_tokens) as m:
            ids = m.add_many(turns)
            pages = m._archive.pages()
            c = [layout_cells(p.layout) for p in pages]
            archived = sum(1 for r in m._archive.turns(ids).values() if r.state == "archived")
        cells += c
        per_conv.append({"conversation": conv["id"], "pages": len(pages), "cells_per_page": sum(c) / len(c),
                         "turns_per_page": archived / len(pages)})
        print(json.dumps(per_conv[-1]), flush=True)
    print(json.dumps({"summary": {"pages": len(cells), "cells_per_page": sum(cells) / len(cells),
                                  "turns_per_page": sum(r["turns_per_page"] for r in per_conv) / len(per_conv)}}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--locomo", default="../shared/data/locomo/locomo10.json", help="LoCoMo JSON (evaluation only)")
    ap.add_argument("--conversations", type=int, default=2, help="conversations to page out (from the first)")
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--working-tokens", type=int, default=4096, help="Memory's working_tokens")
    ap.add_argument("--no-compare", action="store_true", help="skip the run without verification")
    ap.add_argument("--density-only", action="store_true",
                    help="only page out (no verification, no reading: seconds, no model weights loaded) and "
                         "report cells and turns per page")
    args = ap.parse_args(argv)
    if args.density_only:
        return density(args)
    from benchmarks.locomo_recall import load_locomo
    from ocr_model.reader import load

    reader = load(args.model)
    results = []
    for conv in load_locomo(args.locomo)[: args.conversations]:
        turns = [{"role": role, "content": text, "name": spk} | ({"timestamp": when} if when is not None else {})
                 for _, spk, text, when, role in conv["turns"]]
        for verify in (True,) if args.no_compare else (True, False):
            r = run_one(turns, reader, verify, args.working_tokens)
            r["conversation"] = conv["id"]
            results.append(r)
            print(json.dumps(r), flush=True)
    on = [r for r in results if r["verify"]]
    off = [r for r in results if not r["verify"]]
    summary = {"cells_per_page": sum(r["cells_per_page"] * r["pages"] for r in on) / max(1, sum(r["pages"] for r in on)),
               "add_seconds_verify": sum(r["add_seconds"] for r in on),
               "add_seconds_no_verify": sum(r["add_seconds"] for r in off) if off else None,
               "read_back_char_precision": sum(r["read_back"]["char_precision"] * r["read_back"]["turns"] for r in on)
               / max(1, sum(r["read_back"]["turns"] for r in on))}
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
