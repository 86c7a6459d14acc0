"""OpenAI chat messages in and out of Memory: tool calls, tool results, None content, parts, roles."""

from __future__ import annotations

import pytest

from optimem import Turn
from optimem.errors import InvalidInputError
from optimem.messages import message_to_turn, replayable, turn_to_message

CALL = {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
TRANSCRIPT = [
    {"role": "system", "content": "You are a travel agent."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL], "refusal": None, "annotations": [],
     "audio": None, "function_call": None},
    {"role": "tool", "tool_call_id": "call_w1", "content": "-3 C, snowing, wind 41 km/h"},
    {"role": "assistant", "content": [{"type": "text", "text": "It is -3 C and snowing in Oslo."}]},
]


def test_a_real_transcript_is_added_as_is_and_replays_exactly(make_memory):
    m = make_memory()
    ids = m.add_many(TRANSCRIPT)
    assert len(ids) == 5
    assert m.get(ids[2]).text == '[call call_w1] get_weather({"city": "Oslo"})'
    assert m.get(ids[3]).text == "[result call_w1] -3 C, snowing, wind 41 km/h"
    assert replayable(m.recent()) == [
        {"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_w1", "content": "-3 C, snowing, wind 41 km/h"},
        {"role": "assistant", "content": "It is -3 C and snowing in Oslo."},
    ]


def test_tool_calls_and_results_are_recallable_after_page_out(make_memory):
    from tests.optimem.conftest import make_conversation

    m = make_memory(working_tokens=300)
    ids = m.add_many(TRANSCRIPT)
    m.add_many(make_conversation(30))
    assert m.get(ids[3]).tier != "verbatim"  # paged out: read back from its page
    hits = {h.turn_id: h for h in m.recall("get_weather Oslo snowing wind", k=10)}
    assert ids[2] in hits and ids[3] in hits
    assert turn_to_message("assistant", hits[ids[2]].text)["tool_calls"] == [CALL]
    msgs = replayable([m.get(i) for i in ids])
    assert msgs[2]["tool_calls"] == [CALL] and msgs[3]["tool_call_id"] == "call_w1"


def test_parts_and_other_fields_are_kept_as_text():
    t = message_to_turn({"role": "user", "content": [
        {"type": "text", "text": "what is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "file", "file": {"filename": "report.pdf"}}]})
    assert t.text == "what is in this picture?\n[image]\n[file report.pdf]"
    assert message_to_turn({"role": "assistant", "content": None, "refusal": "I can't help with that."}).text == \
        "I can't help with that."
    t = message_to_turn({"role": "assistant", "content": "ok", "function_call": {"name": "f", "arguments": "{}"}})
    assert t.text == "ok\n[call -] f({})"
    t = message_to_turn({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "sh", "arguments": "ls -l\n/tmp"}}]})
    assert t.text == "[call c1] sh(ls -l /tmp)"  # not JSON: kept as written, on one line


def test_custom_roles_are_namespaced_and_replay_as_named_user_turns(make_memory):
    m = make_memory()
    a = m.add({"role": "speaker:Caroline", "content": "I went hiking."})
    b = m.add(Turn(role="Mel", text="Where?"))  # any role from a Turn
    assert m.get(a).role == "speaker:Caroline" and m.get(b).role == "Mel"
    assert replayable([m.get(a), m.get(b)]) == [
        {"role": "user", "content": "I went hiking.", "name": "speaker_Caroline"},
        {"role": "user", "content": "Where?", "name": "Mel"},
    ]


def test_orphan_tool_results_are_dropped_from_a_replay(make_memory):
    m = make_memory()
    ids = m.add_many(TRANSCRIPT)
    msgs = replayable([m.get(i) for i in ids[3:]])  # the call itself is not in the list
    assert [x["role"] for x in msgs] == ["assistant"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"role": "robot", "content": "beep"}, "unknown role 'robot'"),
        ({"role": "user", "content": "x", "tool_calls": [CALL]}, "belong on assistant"),
        ({"role": "tool", "content": "42"}, "tool_call_id"),
        ({"role": "user", "content": "x", "tool_call_id": "c"}, "belongs on tool messages"),
        ({"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {}}]}, r"tool_calls\[0\]"),
        ({"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}}]}, "needs an 'id'"),
        ({"role": "user", "content": [{"type": "video"}]}, "content part 0"),
        ({"role": "user", "content": "x", "extra": 1}, "unknown keys"),
        ({"role": "user", "content": 5}, "'content' must be"),
    ],
)
def test_bad_messages_say_what_is_wrong(make_memory, bad, match):
    m = make_memory()
    with pytest.raises(InvalidInputError, match=match):
        m.add(bad)
    assert m.stats().turns_verbatim == 0
