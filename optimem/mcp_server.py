"""An MCP server over stdio that gives any MCP client (Claude Desktop, Cursor, IDE agents) an optimem store.

    optimem mcp STORE [--namespace NS] [--model DIR] [--lock-timeout S] [--read-only]
    build_server(memories) -> mcp.server.mcpserver.MCPServer      (tests, embedding in another server)
    serve(store, ...)                                              what `optimem mcp` runs

Needs the official MCP Python SDK (`pip install 'optimem[mcp]'`, mcp >= 2). Tools (every one takes an optional
`namespace`; without it, the server's --namespace):

    remember(content, role="user", pin=False)    one turn; returns {"added": [id]}
    remember_transcript(messages, pin=False)     OpenAI chat messages as they come (optimem.messages: tool
                                                 calls, tool results, content parts); returns {"added": ids}
    recall(query, k=5, decode=True)              {"memories": [{turn_id, role, text, tier, confidence,
                                                 score, age_seconds, age, age_turns, pinned}]}
    context(max_tokens=2000, query=None, k=5)    the prompt block of Memory.context
    forget(turn_ids)                             {"forgotten": n}
    pin(turn_id, pinned=True)                    {"turn_id": id, "pinned": bool}
    stats()                                      Memory.stats() as a dict, with compression

The store stays open (and, unless --read-only, its write lock held) while the server runs; other processes
can read it with `optimem recall --read-only`. One namespace is open at a time: a call for another one
closes the current Memory and opens that one (same reader, so the model loads at most once). Errors are MCP
tool errors (the result has isError: true and one line saying what was wrong and what to do); nothing is
written to stdout but the protocol.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from optimem import __version__
from optimem.errors import OptimemError
from optimem.memory import Memory

__all__ = ["Memories", "build_server", "serve"]


class Memories:
    """The server's Memory, one namespace open at a time (see the module doc). Thread-safe: MCP runs sync
    tools in worker threads."""

    def __init__(self, store: str | Path, *, namespace: str = "default", model: Any = None,
                 lock_timeout: float = 10.0, read_only: bool = False, **memory_kw: Any) -> None:
        self.store, self.default_namespace, self.read_only = Path(store), namespace, read_only
        self._kw = dict(lock_timeout=lock_timeout, read_only=read_only, **memory_kw)
        self._lock = threading.Lock()
        self._memory = Memory(self.store, model=model, namespace=namespace, **self._kw)  # errors before serving

    def run(self, namespace: str | None, fn: Callable[[Memory], Any]) -> Any:
        """fn(the Memory of `namespace`), with optimem's errors turned into MCP tool errors."""
        with self._lock:
            try:
                ns = namespace or self.default_namespace
                if ns != self._memory.namespace:
                    self._switch(ns)
                return fn(self._memory)
            except (OptimemError, ValueError) as e:
                msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
                raise ToolError(f"{type(e).__name__}: {' '.join(msg.split())}") from None

    def _switch(self, namespace: str) -> None:
        old, reader = self._memory.namespace, self._memory.reader
        self._memory.close()
        try:
            self._memory = Memory(self.store, model=reader, namespace=namespace, **self._kw)
        except BaseException:
            self._memory = Memory(self.store, model=reader, namespace=old, **self._kw)  # stay usable
            raise

    def close(self) -> None:
        with self._lock:
            self._memory.close()


def _age(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


def build_server(memories: Memories) -> MCPServer:
    """An MCPServer with optimem's tools (module doc) over `memories`."""
    server = MCPServer(
        "optimem",
        version=__version__,
        instructions="Long-term memory of past conversations, kept locally. remember what should outlive "
        "this conversation; recall (or context) before answering questions about the past.",
    )

    @server.tool()
    def remember(content: str, role: str = "user", pin: bool = False, namespace: str | None = None) -> dict:
        """Remember one conversation turn (role: system, developer, user, assistant, tool, or 'ns:name').
        pin=True keeps it at full fidelity for good."""
        return memories.run(namespace, lambda m: {"added": m.add_many([{"role": role, "content": content}], pin=pin)})

    @server.tool()
    def remember_transcript(messages: list[dict[str, Any]], pin: bool = False, namespace: str | None = None) -> dict:
        """Remember a transcript: OpenAI chat messages as they come (tool_calls, tool results with
        tool_call_id, content None or a list of parts). All or nothing."""
        return memories.run(namespace, lambda m: {"added": m.add_many(messages, pin=pin)})

    @server.tool()
    def recall(query: str, k: int = 5, decode: bool = True, namespace: str | None = None) -> dict:
        """The k remembered turns that best match the query, best first: text (read back from the page image
        for old turns, errors included), tier (verbatim, base, small, tiny, gist), the reader's confidence,
        age. decode=False is fast and returns no text for archived turns."""

        def go(m: Memory) -> dict:
            return {"memories": [
                {"turn_id": h.turn_id, "role": h.role, "text": h.text, "tier": h.tier, "confidence": h.confidence,
                 "score": h.score, "age_seconds": round(h.age_seconds, 1), "age": _age(h.age_seconds),
                 "age_turns": h.age_turns, "pinned": h.pinned}
                for h in m.recall(query, k=k, decode=decode)]}

        return memories.run(namespace, go)

    @server.tool()
    def context(max_tokens: int = 2000, query: str | None = None, k: int = 5, namespace: str | None = None) -> str:
        """A prompt block within max_tokens: recalled memories (age, tier, confidence) then the most recent
        turns verbatim. query defaults to the last user turn."""
        return memories.run(namespace, lambda m: m.context(max_tokens, query=query, k=k))

    @server.tool()
    def forget(turn_ids: list[int], namespace: str | None = None) -> dict:
        """Delete turns for good (text, vectors, and their rows on the page images)."""
        return memories.run(namespace, lambda m: {"forgotten": m.forget(turn_ids)})

    @server.tool()
    def pin(turn_id: int, pinned: bool = True, namespace: str | None = None) -> dict:
        """pinned=True: the turn never fades or is forgotten; pinned=False lets it decay again."""

        def go(m: Memory) -> dict:
            (m.pin if pinned else m.unpin)(turn_id)
            return {"turn_id": turn_id, "pinned": pinned}

        return memories.run(namespace, go)

    @server.tool()
    def stats(namespace: str | None = None) -> dict:
        """Turns (verbatim, archived, forgotten), pages per tier, visual vs text tokens, bytes on disk."""

        def go(m: Memory) -> dict:
            s = m.stats()
            return {**dataclasses.asdict(s), "compression": s.compression}

        return memories.run(namespace, go)

    return server


def serve(store: str | Path, *, namespace: str = "default", model: Any = None, lock_timeout: float = 10.0,
          read_only: bool = False) -> int:
    """Open the store (errors raise before anything is served), then serve it over stdio until the client
    closes the connection. Returns 0."""
    memories = Memories(store, namespace=namespace, model=model, lock_timeout=lock_timeout, read_only=read_only)
    try:
        build_server(memories).run("stdio")
    finally:
        memories.close()
    return 0
