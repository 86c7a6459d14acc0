"""OpenAI chat messages <-> optimem turns: what Memory.add accepts as a dict, and how it is given back.

    message_to_turn(msg)          an OpenAI chat message dict -> optimem.Turn, or InvalidInputError
    turn_to_message(role, text)   a stored turn (verbatim, or read back from its page) -> an OpenAI message
    replayable(recollections)     Recollections -> OpenAI messages an API accepts again, in order

Accepted as they come from the OpenAI API or SDK (`message.model_dump()`):
  roles        system, developer, user, assistant, tool (ROLES), or a namespaced custom role "ns:name"
               (e.g. "speaker:Caroline"); anything else is refused with the list. A bare custom role
               such as "Caroline" is accepted from optimem.Turn(role=...) only, never from a dict.
  content      a str, None (an assistant turn that only calls tools), or a list of parts: text and
               refusal parts keep their text; image_url, input_audio and file parts become a marker line
               ("[image]", "[audio]", "[file NAME]": the pixels/bytes are not kept).
  tool_calls   on assistant messages: each call is written as one line "[call ID] NAME(ARGUMENTS)" after
               the content (ARGUMENTS made compact when they are valid JSON), so it is drawn on the page,
               embedded and recallable like any text. function_call (the older form) becomes "[call -] ...".
  tool_call_id on tool messages: the text is "[result ID] CONTENT".
  name, metadata, timestamp as before; refusal (text), annotations and audio (None, or marker) are accepted.

Everything a message says is in the turn's text, nothing in side fields: a paged-out turn keeps no raw
text on disk (docs/api.md), so tool calls must live on the page to survive. turn_to_message parses the
same lines back, so a verbatim turn replays exactly; a turn read back from its page replays as the model
read it (errors included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from optimem.errors import InvalidInputError
from ocr_model.page import Turn

__all__ = ["ROLES", "message_to_turn", "turn_to_message", "replayable"]

ROLES = ("system", "developer", "user", "assistant", "tool")
_CUSTOM_ROLE = re.compile(r"[A-Za-z0-9_-]{1,32}:[^\s:][^\n]{0,63}")
_KEYS = {"role", "content", "name", "metadata", "timestamp", "tool_calls", "tool_call_id", "function_call",
         "refusal", "annotations", "audio"}
_CALL = re.compile(r"\[call ([^\]\s]+)\] ([A-Za-z0-9_.:-]+)\((.*)\)")
_RESULT = re.compile(r"\[result ([^\]\s]+)\] ?(.*)", re.DOTALL)


def _fail(msg: str) -> InvalidInputError:
    return InvalidInputError(f"bad message: {msg}")


def _check_role(role: Any) -> str:
    if not isinstance(role, str):
        raise _fail(f"'role' must be a str such as 'user', got {type(role).__name__}")
    if role in ROLES or _CUSTOM_ROLE.fullmatch(role):
        return role
    raise _fail(
        f"unknown role {role!r}; use one of {', '.join(ROLES)}, a namespaced custom role such as "
        "'speaker:Caroline', or optimem.Turn(role=...) for any other name"
    )


def _parts_text(content: list) -> str:
    lines = []
    for i, p in enumerate(content):
        kind = p.get("type") if isinstance(p, Mapping) else None
        if kind == "text" and isinstance(p.get("text"), str):
            lines.append(p["text"])
        elif kind == "refusal" and isinstance(p.get("refusal"), str):
            lines.append(p["refusal"])
        elif kind == "image_url":
            lines.append("[image]")
        elif kind == "input_audio":
            lines.append("[audio]")
        elif kind == "file":
            name = (p.get("file") or {}).get("filename") if isinstance(p.get("file"), Mapping) else None
            lines.append(f"[file {name}]" if name else "[file]")
        else:
            raise _fail(
                f"content part {i} is {p!r:.80}; expected {{'type': 'text', 'text': ...}} (or refusal, "
                "image_url, input_audio, file)"
            )
    return "\n".join(lines)


def _arguments(args: Any) -> str:
    if not isinstance(args, str):
        raise _fail(f"tool call 'arguments' must be a JSON string, got {type(args).__name__}")
    try:
        return json.dumps(json.loads(args), ensure_ascii=False, separators=(", ", ": "))
    except ValueError:
        return " ".join(args.splitlines())  # not JSON: kept as written, on one line


def _call_line(call: Any, i: int) -> str:
    fn = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise _fail(
            f"tool_calls[{i}] must be {{'id': ..., 'type': 'function', 'function': {{'name': ..., "
            f"'arguments': ...}}}}, got {call!r:.120}"
        )
    cid = call.get("id")
    if not isinstance(cid, str) or not re.fullmatch(r"[^\]\s]+", cid):
        raise _fail(f"tool_calls[{i}] needs an 'id' string without spaces or ']', got {cid!r}")
    return f"[call {cid}] {fn['name']}({_arguments(fn.get('arguments', '{}'))})"


def message_to_turn(msg: Mapping[str, Any]) -> Turn:
    """An OpenAI chat message dict -> Turn (text as described in the module doc). InvalidInputError says
    what is wrong: unknown keys or role, tool fields on the wrong role, malformed parts or calls."""
    extra = set(msg) - _KEYS
    if extra or "role" not in msg:
        raise _fail(
            f"a message dict needs 'role' (and 'content'); optional: {', '.join(sorted(_KEYS - {'role', 'content'}))}; "
            f"got unknown keys {sorted(extra)}" if extra else f"a message dict needs 'role'; got keys {sorted(msg)}"
        )
    role = _check_role(msg["role"])
    if "content" not in msg and not msg.get("tool_calls") and not msg.get("function_call"):
        raise _fail(f"a message dict needs 'content' (None only beside tool_calls); got keys {sorted(msg)}")
    content = msg.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = _parts_text(content)
    else:
        raise _fail(f"'content' must be a str, None or a list of parts, got {type(content).__name__}")
    lines = [text] if text else []
    if msg.get("refusal") is not None:
        if not isinstance(msg["refusal"], str):
            raise _fail(f"'refusal' must be a str or None, got {type(msg['refusal']).__name__}")
        lines.append(msg["refusal"])
    if msg.get("audio") is not None:
        lines.append("[audio]")
    calls, fcall = msg.get("tool_calls"), msg.get("function_call")
    if (calls is not None or fcall is not None) and role != "assistant":
        raise _fail(f"tool_calls/function_call belong on assistant messages, not on role {role!r}")
    if calls is not None:
        if not isinstance(calls, list):
            raise _fail(f"'tool_calls' must be a list, got {type(calls).__name__}")
        lines += [_call_line(c, i) for i, c in enumerate(calls)]
    if fcall is not None:
        if not isinstance(fcall, Mapping):
            raise _fail(f"'function_call' must be {{'name': ..., 'arguments': ...}}, got {fcall!r:.80}")
        lines.append(_call_line({"id": "-", "function": fcall}, 0))
    text = "\n".join(lines)
    if role == "tool":
        cid = msg.get("tool_call_id")
        if not isinstance(cid, str) or not re.fullmatch(r"[^\]\s]+", cid):
            raise _fail(f"a tool message needs 'tool_call_id' (a string without spaces or ']'), got {cid!r}")
        text = f"[result {cid}] {text}"
    elif msg.get("tool_call_id") is not None:
        raise _fail(f"'tool_call_id' belongs on tool messages, not on role {role!r}")
    meta = msg.get("metadata")
    if msg.get("name") is not None:
        meta = {**(meta or {}), "name": msg["name"]}
    try:
        return Turn(role=role, text=text, timestamp=msg.get("timestamp"), metadata=meta)
    except (TypeError, ValueError) as e:
        raise _fail(str(e)) from e


def turn_to_message(role: str, text: str, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A stored turn back as an OpenAI message: "[call ...]" lines at the end of an assistant turn become
    tool_calls (content None if nothing else is left), "[result ID]" opens a tool turn's tool_call_id;
    metadata 'name' becomes name. A bare custom role (from Turn) becomes a user message named after it."""
    msg: dict[str, Any]
    if role == "assistant":
        lines = text.split("\n")
        calls = []
        while lines and (m := _CALL.fullmatch(lines[-1].strip())):
            cid, name, args = m.groups()
            calls.insert(0, {"id": cid, "type": "function", "function": {"name": name, "arguments": args}})
            lines.pop()
        body = "\n".join(lines)
        msg = {"role": role, "content": body if body or not calls else None}
        if calls:
            msg["tool_calls"] = calls
    elif role == "tool":
        m = _RESULT.fullmatch(text)
        msg = {"role": role, "tool_call_id": m.group(1) if m else "-", "content": m.group(2) if m else text}
    elif role in ROLES:
        msg = {"role": role, "content": text}
    else:  # a custom role: no API knows it, so it is replayed as a named user turn
        msg = {"role": "user", "content": text, "name": re.sub(r"[^A-Za-z0-9_-]", "_", role)[:64]}
    if metadata and metadata.get("name") is not None:
        msg["name"] = metadata["name"]
    return msg


def replayable(recollections: Sequence[Any]) -> list[dict[str, Any]]:
    """Recollections (anything with role, text, metadata) -> OpenAI messages in the given order, ready to
    send again: a tool result whose call is not among the earlier messages (its call was paged out or not
    recalled) is dropped, since the APIs refuse an orphan tool message. Turns without text are skipped."""
    out, open_calls = [], set()
    for r in recollections:
        if r.text is None:
            continue
        msg = turn_to_message(r.role, r.text, r.metadata)
        if msg["role"] == "tool" and msg["tool_call_id"] not in open_calls:
            continue
        open_calls |= {c["id"] for c in msg.get("tool_calls", ())}
        out.append(msg)
    return out
