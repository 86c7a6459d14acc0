"""`optimem mcp STORE` end to end: the MCP SDK's own client starts the server over stdio and calls every tool."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the MCP SDK is the optimem[mcp] extra")
import anyio  # noqa: E402  (installed with mcp)
from mcp import Client, StdioServerParameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

TRANSCRIPT = [
    {"role": "user", "content": "What is the weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "-3 C and snowing"},
    {"role": "assistant", "content": "It is -3 C and snowing in Oslo."},
]


def _server(store: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "optimem.cli", "mcp", str(store), *extra],
                                 env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, cwd=str(ROOT))


def _data(result) -> dict:
    assert not result.is_error, result.content
    return result.structured_content if result.structured_content is not None else json.loads(result.content[0].text)


def test_every_tool_over_stdio(tmp_path):
    store = tmp_path / "agent.optimem"

    async def session() -> None:
        async with Client(_server(store)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert tools == {"remember", "remember_transcript", "recall", "context", "forget", "pin", "stats"}

            added = _data(await client.call_tool("remember", {"content": "My locker code is 4417."}))["added"]
            ids = _data(await client.call_tool("remember_transcript", {"messages": TRANSCRIPT}))["added"]
            assert added == [1] and ids == [2, 3, 4, 5]

            hits = _data(await client.call_tool("recall", {"query": "locker code", "k": 2}))["memories"]
            assert hits[0]["turn_id"] == 1 and hits[0]["text"] == "My locker code is 4417."
            assert hits[0]["tier"] == "verbatim" and hits[0]["confidence"] == 1.0 and "age" in hits[0]
            hits = _data(await client.call_tool("recall", {"query": "get_weather Oslo", "k": 5}))["memories"]
            assert '[call call_1] get_weather({"city": "Oslo"})' in [h["text"] for h in hits]

            block = await client.call_tool("context", {"max_tokens": 500, "query": "locker"})
            assert not block.is_error and "My locker code is 4417." in block.content[0].text

            assert _data(await client.call_tool("pin", {"turn_id": 1})) == {"turn_id": 1, "pinned": True}
            assert _data(await client.call_tool("forget", {"turn_ids": [2]})) == {"forgotten": 1}
            stats = _data(await client.call_tool("stats", {}))
            assert stats["turns_verbatim"] == 4 and stats["turns_forgotten"] == 1

            # another namespace per call: isolated from the server's default one
            _data(await client.call_tool("remember", {"content": "Bob's locker is 99.", "namespace": "bob"}))
            hits = _data(await client.call_tool("recall", {"query": "locker", "namespace": "bob"}))["memories"]
            assert [h["text"] for h in hits] == ["Bob's locker is 99."]
            assert _data(await client.call_tool("stats", {}))["turns_verbatim"] == 4

            # errors are MCP tool errors that say what was wrong, and the server keeps serving
            for name, args, match in [
                ("recall", {"query": " "}, "non-empty query"),
                ("remember", {"content": "beep", "role": "robot"}, "unknown role 'robot'"),
                ("forget", {"turn_ids": [999]}, "no turns [999]"),
                ("stats", {"namespace": "../evil"}, "namespace"),
            ]:
                r = await client.call_tool(name, args)
                assert r.is_error and match in r.content[0].text, (name, r.content)
            assert _data(await client.call_tool("stats", {}))["namespace"] == "default"

    anyio.run(session)


def test_read_only_server_refuses_writes(tmp_path):
    store = tmp_path / "s"
    from optimem import Memory

    with Memory(store) as m:
        m.add("kept")

    async def session() -> None:
        async with Client(_server(store, "--read-only")) as client:
            r = await client.call_tool("remember", {"content": "new"})
            assert r.is_error and "read_only" in r.content[0].text
            assert _data(await client.call_tool("recall", {"query": "kept"}))["memories"][0]["text"] == "kept"

    anyio.run(session)
