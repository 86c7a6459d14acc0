"""The `optimem` command line: one argparse subcommand per verb (render, ...)."""

from __future__ import annotations

import argparse
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
