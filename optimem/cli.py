"""The `optimem` command line: one argparse subcommand per verb (render, add, recall, stats, consolidate, check)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser", "read_conversation"]


def read_conversation(path: Path) -> list:
    """Turns from a JSONL file, one OpenAI-style message per line: {"role": ..., "content": ...}.

    Optional keys: "timestamp" (seconds since the epoch) and "id" (int). A "content" that is a list of
    parts keeps the text of its {"type": "text", "text": ...} parts, joined by newlines.
    """
    from .render import Turn

    turns = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); write one JSON object per line") from e
            if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
                raise ValueError(f'{path}:{n}: expected an object with "role" and "content", got {line[:80]!r}')
            content = msg["content"]
            if content is None:
                content = ""
            elif isinstance(content, list):
                content = "\n".join(p.get("text", "") for p in content
                                    if isinstance(p, dict) and p.get("type") == "text")
            elif not isinstance(content, str):
                raise ValueError(f'{path}:{n}: "content" must be a string or a list of parts, '
                                 f"got {type(content).__name__}")
            try:
                turns.append(Turn(role=str(msg["role"]), text=content, timestamp=msg.get("timestamp"),
                                  id=msg.get("id")))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{n}: {e}") from e
    return turns


def _cmd_render(args: argparse.Namespace) -> int:
    from .render import TIERS, page_at_tier, render_turns

    if args.tier not in TIERS:
        print(f"optimem render: unknown tier {args.tier!r}; choose one of {', '.join(TIERS)}", file=sys.stderr)
        return 2
    try:
        turns = read_conversation(Path(args.conversation))
    except (OSError, ValueError) as e:
        print(f"optimem render: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pages = render_turns(turns, first_turn_number=args.first_turn_number)
    for i, page in enumerate(pages, 1):
        page_at_tier(page.image, args.tier).save(out / f"page_{i:04d}.png")
        if args.text:
            (out / f"page_{i:04d}.txt").write_text(page.text + "\n", encoding="utf-8")
    print(f"{len(turns)} turns -> {len(pages)} pages ({args.tier}, {TIERS[args.tier]} px) in {out}")
    return 0


def _open_memory(args: argparse.Namespace, *, read_only: bool = False):
    from .memory import Memory

    return Memory(args.store, model=args.model, namespace=args.namespace, read_only=read_only)


def _memory_command(fn):
    """Run a memory subcommand; optimem's own errors become one line on stderr and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        from .errors import OptimemError

        try:
            return fn(args)
        except (OptimemError, ValueError) as e:
            print(f"optimem {args.command}: {e}", file=sys.stderr)
            return 2

    return run


@_memory_command
def _cmd_add(args: argparse.Namespace) -> int:
    from .render import Turn

    turns: list = [Turn(role=args.role, text=t) for t in args.text]
    if args.file:
        turns += [Turn(role=t.role, text=t.text, timestamp=t.timestamp, metadata=t.metadata)
                  for t in read_conversation(Path(args.file))]
    if not turns:
        print("optimem add: nothing to add; pass TEXT arguments or --file conversation.jsonl", file=sys.stderr)
        return 2
    with _open_memory(args) as memory:
        ids = memory.add_many(turns, pin=args.pin)
    print(json.dumps({"added": ids}))
    return 0


@_memory_command
def _cmd_recall(args: argparse.Namespace) -> int:
    with _open_memory(args, read_only=args.read_only) as memory:
        hits = memory.recall(args.query, k=args.k, decode=not args.no_decode)
    for h in hits:
        print(json.dumps({"turn_id": h.turn_id, "role": h.role, "tier": h.tier, "score": round(h.score, 4),
                          "confidence": None if h.confidence is None else round(h.confidence, 4),
                          "age_turns": h.age_turns, "text": h.text}, ensure_ascii=False))
    return 0


@_memory_command
def _cmd_stats(args: argparse.Namespace) -> int:
    import dataclasses

    with _open_memory(args, read_only=True) as memory:
        s = memory.stats()
    print(json.dumps({**dataclasses.asdict(s), "compression": s.compression}, indent=2))
    return 0


@_memory_command
def _cmd_consolidate(args: argparse.Namespace) -> int:
    with _open_memory(args) as memory:
        report = memory.consolidate(now=args.now)
    print(json.dumps({"pages_downgraded": dict(report.pages_downgraded),
                      "turns_forgotten": list(report.turns_forgotten), "pages_deleted": report.pages_deleted}))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    """Verify a store (every namespace, or --namespace); exit 0 if all is well, 1 if problems remain, 2 if
    the store cannot be opened. Needs no model: it reads the store, not the pages' text."""
    from .errors import OptimemError
    from .store import Archive
    from .store.check import check_store, format_report

    try:
        with contextlib.closing(Archive.open(args.store, read_only=not args.repair, create=False)) as a:
            names = [args.namespace] if args.namespace else a.namespaces()
        ok = True
        for name in names:
            with contextlib.closing(Archive.open(args.store, name, read_only=not args.repair, create=False)) as a:
                report = check_store(a, repair=args.repair)
            print("\n".join(format_report(report)))
            ok = ok and report.ok
    except OptimemError as e:
        print(f"optimem check: {e}", file=sys.stderr)
        return 2
    return 0 if ok else 1


def _memory_parser(sub, name: str, help: str, func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("store", help="the store directory (created by add if missing)")
    p.add_argument("--namespace", default="default", help="namespace inside the store (default: default)")
    p.add_argument("--model", default=None,
                   help="OCR checkpoint directory (default: the model shipped in ocr_model/weights/)")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optimem", description="Optical long-context memory for LLM agents.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("render", help="render a JSONL conversation to page PNGs",
                       description="Render a conversation (JSONL, one {\"role\", \"content\"} per line) "
                                   "to page images, as the memory stores them.")
    p.add_argument("conversation", help="path of the JSONL conversation")
    p.add_argument("--out", required=True, help="directory for page_NNNN.png (created if missing)")
    p.add_argument("--tier", default="base", help="resolution tier: large, base, small, tiny or gist "
                                                  "(default base = 1024 px)")
    p.add_argument("--first-turn-number", type=int, default=1, help="number printed for the first turn")
    p.add_argument("--text", action="store_true", help="also write page_NNNN.txt with each page's text")
    p.set_defaults(func=_cmd_render)

    p = _memory_parser(sub, "add", "add turns to a memory store", _cmd_add)
    p.add_argument("text", nargs="*", help="turn texts, one turn each")
    p.add_argument("--role", default="user", help="role of the TEXT turns (default: user)")
    p.add_argument("--file", help="also add a JSONL conversation (one {\"role\", \"content\"} per line)")
    p.add_argument("--pin", action="store_true", help="pin the added turns (they never fade)")

    p = _memory_parser(sub, "recall", "print the turns that best match a query, one JSON object per line",
                       _cmd_recall)
    p.add_argument("query", help="what to look for")
    p.add_argument("-k", type=int, default=5, help="how many turns (default 5)")
    p.add_argument("--no-decode", action="store_true", help="do not read pages back (text is null)")
    p.add_argument("--read-only", action="store_true",
                   help="open without the write lock (works while another process writes; no strengthening)")

    _memory_parser(sub, "stats", "print a store namespace's statistics as JSON", _cmd_stats)

    p = _memory_parser(sub, "consolidate", "apply the forgetting curve: fade pages, forget what fell below",
                       _cmd_consolidate)
    p.add_argument("--now", type=float, default=None,
                   help="the policy clock's current value (turns added, or epoch seconds) instead of the real one")

    p = sub.add_parser("check", help="verify a store's pages, index and files; --repair fixes what it can",
                       description="Verify every page against its SHA-256, the index against SQLite, the "
                                   "manifest, and files no page references. Exit 0: ok; 1: problems; 2: unusable.")
    p.add_argument("store", help="the store directory")
    p.add_argument("--namespace", default=None, help="check only this namespace (default: all)")
    p.add_argument("--repair", action="store_true",
                   help="rebuild the index from the vectors and move unreferenced files to quarantine/ "
                        "(never deletes); damaged pages are listed with their turns")
    p.set_defaults(func=_cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
