"""The LangChain adapter against the real langchain-core: a RunnableWithMessageHistory conversation, tool
calls round trip, the retriever reads archived turns back."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core", reason="langchain-core is the optimem[langchain] extra")
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder  # noqa: E402
from langchain_core.runnables.history import RunnableWithMessageHistory  # noqa: E402

from optimem.integrations.langchain import OptimemChatMessageHistory, OptimemRetriever  # noqa: E402

CALL = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")  # still shipped in langchain-core 1.x
def test_runnable_with_message_history_stores_and_replays_the_conversation(make_memory):
    memory = make_memory()
    model = GenericFakeChatModel(messages=iter([AIMessage("Noted: bay 41."), AIMessage("Bay 41.")]))
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{question}")])
    chain = RunnableWithMessageHistory(prompt | model, lambda session_id: OptimemChatMessageHistory(memory),
                                       input_messages_key="question", history_messages_key="history")
    cfg = {"configurable": {"session_id": "s"}}
    assert chain.invoke({"question": "I parked in bay 41."}, config=cfg).content == "Noted: bay 41."
    chain.invoke({"question": "Where did I park?"}, config=cfg)
    history = OptimemChatMessageHistory(memory).messages
    assert [(type(m).__name__, m.content) for m in history] == [
        ("HumanMessage", "I parked in bay 41."), ("AIMessage", "Noted: bay 41."),
        ("HumanMessage", "Where did I park?"), ("AIMessage", "Bay 41."),
    ]


def test_tool_calls_round_trip_and_clear_forgets_everything(make_memory):
    memory = make_memory()
    h = OptimemChatMessageHistory(memory)
    h.add_messages([SystemMessage("You help travellers."), HumanMessage("Weather in Oslo?"),
                    AIMessage("", tool_calls=[CALL]), ToolMessage("-3 C, snowing", tool_call_id="call_1")])
    sys_m, human, ai, tool = h.messages
    assert isinstance(sys_m, SystemMessage) and human.content == "Weather in Oslo?"
    assert isinstance(ai, AIMessage) and ai.tool_calls == [CALL]
    assert isinstance(tool, ToolMessage) and tool.tool_call_id == "call_1" and tool.content == "-3 C, snowing"
    h.clear()
    assert h.messages == [] and memory.stats().turns_forgotten == 4


def test_retriever_reads_archived_turns_back(make_memory):
    from tests.optimem.conftest import make_conversation

    memory = make_memory(working_tokens=300)
    first = memory.add("My locker code is 4417.")
    memory.add_many(make_conversation(30))
    assert memory.get(first, decode=False).tier != "verbatim"
    docs = OptimemRetriever(memory=memory, k=3).invoke("what is my locker code?")
    assert docs[0].metadata["turn_id"] == first and docs[0].page_content == "My locker code is 4417."
    assert docs[0].metadata["tier"] == "base" and docs[0].metadata["confidence"] == pytest.approx(0.99)
    assert "My locker code is 4417." not in [m.content for m in OptimemChatMessageHistory(memory).messages]
