"""The `optimem` command line: one argparse subcommand per verb (render, add, recall, stats, consolidate, check,
mcp).

Contract:
  - every error is one line on stderr and exit status 2: bad arguments or values, a missing store or
    namespace for the commands that only use one (recall, stats, consolidate), missing or malformed files,
    optimem's own errors (StoreLockedError names --lock-timeout);
  - arguments and turns are checked before anything is opened, so a bad call creates no store;
  - only reading a page back loads the OCR model (optimem.lazy_reader): stats, add, consolidate,
    recall --no-decode, recall of verbatim turns, --help and --version never import torch;
  - all memory commands take --namespace, --model, --lock-timeout; `optimem --version` prints the version;
  - check verifies a store without a model: exit 0 ok, 1 problems remain, 2 the store cannot be opened.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

__all__ = ["main", "build_parser", "read_conversation"]


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (and exit status 2, as argparse does)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s!r}")
    return v


def _non_negative(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = -1.0
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {s!r}")
    return v


def read_conversation(path: Path) -> list:
    """Turns from a JSONL file, one OpenAI chat message per line, as Memory.add accepts them
    (optimem.messages: tool calls, tool results, content parts), plus an optional "id" (int) for render.
    Raises ValueError naming the file and line of the first bad one; OSError if the file cannot be read."""
    from .errors import InvalidInputError
    from .messages import message_to_turn
    from ocr_model.page import Turn

    turns = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); write one JSON object per line") from e
            if not isinstance(msg, dict):
                raise ValueError(f'{path}:{n}: expected an object such as {{"role": ..., "content": ...}}, '
                                 f"got {line.strip()[:80]!r}")
            turn_id = msg.pop("id", None)
            try:
                t = message_to_turn(msg)
                turns.append(Turn(role=t.role, text=t.text, timestamp=t.timestamp, id=turn_id, metadata=t.metadata))
            except (InvalidInputError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{n}: {e}") from e
    return turns


def _cmd_render(args: argparse.Namespace) -> int:
    from ocr_model.page import TIERS, page_at_tier, render_turns

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
    print(f"{len(turns)} turns -> {len(pages)} pages ({args.tier}, {TIERS[args.tier].side} px) in {out}")
    return 0


def _open_memory(args: argparse.Namespace, *, read_only: bool = False, existing: bool = False):
    """Memory(args.store, ...). existing=True: the store and the namespace must already exist (NotFoundError
    otherwise, and nothing is created)."""
    from .store.files import MANIFEST
    from .errors import NotFoundError
    from .memory import Memory

    kw = dict(model=args.model, namespace=args.namespace, lock_timeout=args.lock_timeout,
              verify=not getattr(args, "no_verify", False))
    if existing:
        if not (Path(args.store) / MANIFEST).is_file():
            raise NotFoundError(f"no optimem store at {args.store}; create one with: optimem add {args.store} TEXT")
        if not read_only:  # a read-only open says if the namespace is missing, and creates nothing
            Memory(args.store, read_only=True, **kw).close()
    return Memory(args.store, read_only=read_only, **kw)


def _one_line(e: BaseException) -> str:
    from .errors import StoreLockedError

    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    if isinstance(e, StoreLockedError) and "--lock-timeout" not in msg:
        msg = msg.replace("lock_timeout", "--lock-timeout SECONDS")
    return " ".join(msg.split())


def _memory_command(fn):
    """Run a memory subcommand; errors become one line on stderr and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        from .errors import OptimemError

        try:
            return fn(args)
        except (OptimemError, ValueError, OSError) as e:
            print(f"optimem {args.command}: {_one_line(e)}", file=sys.stderr)
            return 2

    return run


@_memory_command
def _cmd_add(args: argparse.Namespace) -> int:
    from .memory import _as_turn
    from ocr_model.page import Turn

    turns: list = [{"role": args.role, "content": t} for t in args.text]  # a message: its role is checked
    if args.file:
        if not Path(args.file).is_file():
            raise FileNotFoundError(f"no file {args.file}; pass the path of a JSONL conversation")
        turns += [Turn(role=t.role, text=t.text, timestamp=t.timestamp, metadata=t.metadata)
                  for t in read_conversation(Path(args.file))]
    if not turns:
        print("optimem add: nothing to add; pass TEXT arguments or --file conversation.jsonl", file=sys.stderr)
        return 2
    turns = [_as_turn(t) for t in turns]  # every turn checked before the store is opened (or created)
    with _open_memory(args) as memory:
        ids = memory.add_many(turns, pin=args.pin)
    print(json.dumps({"added": ids}))
    return 0


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _table(hits: Sequence[Any]) -> str:
    """Recollections as a fixed-width table, one line each; text on one line, cut to the terminal width."""
    rows = [("id", "role", "tier", "score", "conf", "age", "text")]
    for h in hits:
        text = "(not decoded: run without --no-decode)" if h.text is None else " ".join(h.text.split())
        rows.append((str(h.turn_id), h.role[:16], h.tier, f"{h.score:.3f}",
                     "-" if h.confidence is None else f"{h.confidence:.2f}", _age(h.age_seconds), text))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    room = max(20, shutil.get_terminal_size((120, 24)).columns - sum(widths) - 12)
    lines = []
    for r in rows:
        text = r[6] if len(r[6]) <= room else r[6][: room - 3] + "..."
        lines.append("  ".join(c.rjust(w) if i in (0, 3, 4) else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) + "  " + text)
    return "\n".join(line.rstrip() for line in lines)


@_memory_command
def _cmd_recall(args: argparse.Namespace) -> int:
    with _open_memory(args, read_only=args.read_only, existing=True) as memory:
        hits = memory.recall(args.query, k=args.k, decode=not args.no_decode)
    if not args.json:
        print(_table(hits) if hits else "no memories match")
        return 0
    for h in hits:
        print(json.dumps({"turn_id": h.turn_id, "role": h.role, "tier": h.tier, "score": round(h.score, 4),
                          "confidence": None if h.confidence is None else round(h.confidence, 4),
                          "age_turns": h.age_turns, "age_seconds": round(h.age_seconds, 1), "text": h.text},
                         ensure_ascii=False))
    return 0


@_memory_command
def _cmd_stats(args: argparse.Namespace) -> int:
    import dataclasses

    with _open_memory(args, read_only=True, existing=True) as memory:
        s = memory.stats()
    print(json.dumps({**dataclasses.asdict(s), "compression": s.compression}, indent=2))
    return 0


@_memory_command
def _cmd_consolidate(args: argparse.Namespace) -> int:
    with _open_memory(args, existing=True) as memory:
        report = memory.consolidate(now=args.now)
    print(json.dumps({"pages_downgraded": dict(report.pages_downgraded),
                      "turns_forgotten": list(report.turns_forgotten), "pages_deleted": report.pages_deleted}))
    return 0


@_memory_command
def _cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from .mcp_server import serve
    except ImportError as e:
        print(f"optimem mcp: the MCP SDK is not installed ({e}); install it with: pip install 'optimem[mcp]'",
              file=sys.stderr)
        return 2
    return serve(args.store, namespace=args.namespace, model=args.model, lock_timeout=args.lock_timeout,
                 read_only=args.read_only)


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


def _memory_parser(sub, name: str, help: str, func, store_help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("store", help=store_help)
    p.add_argument("--namespace", default="default", help="namespace inside the store (default: default)")
    p.add_argument("--model", default=None,
                   help="OCR checkpoint directory (default: the model shipped in ocr_model/weights/); "
                        "loaded only when a page is read back")
    p.add_argument("--lock-timeout", type=_non_negative, default=10.0, metavar="SECONDS",
                   help="how long to wait for another process that has the store open for writing (default 10)")
    p.add_argument("--no-verify", action="store_true",
                   help="page turns out without reading the pages back (Memory(verify=False)); by default every "
                        "page written is read back, which loads the model")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="optimem", description="Optical long-context memory for LLM agents.")
    parser.add_argument("--version", action="version", version=f"optimem {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    existing = "the store directory (it must exist: optimem add creates one)"
    created = "the store directory (created if missing)"

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

    p = _memory_parser(sub, "add", "add turns to a memory store", _cmd_add, created)
    p.add_argument("text", nargs="*", help="turn texts, one turn each")
    p.add_argument("--role", default="user", help="role of the TEXT turns (default: user)")
    p.add_argument("--file", help="also add a JSONL conversation (one OpenAI chat message per line)")
    p.add_argument("--pin", action="store_true", help="pin the added turns (they never fade)")

    p = _memory_parser(sub, "recall", "print the turns that best match a query (a table, or --json)",
                       _cmd_recall, existing)
    p.add_argument("query", help="what to look for")
    p.add_argument("-k", type=_positive_int, default=5, help="how many turns (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per hit instead of the table")
    p.add_argument("--no-decode", action="store_true",
                   help="do not read pages back (archived turns show no text; the model is not loaded)")
    p.add_argument("--read-only", action="store_true",
                   help="open without the write lock (works while another process writes; no strengthening)")

    _memory_parser(sub, "stats", "print a store namespace's statistics as JSON", _cmd_stats, existing)

    p = _memory_parser(sub, "consolidate", "apply the forgetting curve: fade pages, forget what fell below",
                       _cmd_consolidate, existing)
    p.add_argument("--now", type=_non_negative, default=None,
                   help="the policy clock's current value (turns added, or epoch seconds) instead of the real one")

    p = _memory_parser(sub, "mcp", "serve the store to MCP clients over stdio (needs optimem[mcp])", _cmd_mcp,
                       created)
    p.add_argument("--read-only", action="store_true",
                   help="serve without the write lock: recall, context and stats only")

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
