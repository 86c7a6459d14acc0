"""LangChain (langchain-core >= 0.3; also what LangGraph nodes use) on top of an optimem Memory.

    OptimemChatMessageHistory(memory)   a BaseChatMessageHistory: for RunnableWithMessageHistory, or as the
                                        message store of a LangGraph node
    OptimemRetriever(memory=..., k=5)   a BaseRetriever: recall as Documents, for RAG chains and tools

pip install 'optimem[langchain]'. The history stores every message (HumanMessage, AIMessage with tool_calls,
ToolMessage, SystemMessage) through Memory.add_many, converted to OpenAI form by langchain_core's own
convert_to_openai_messages, so tool calls and results are kept as optimem.messages describes. Its
`messages` are the turns still in working memory (verbatim, replayable: an orphan ToolMessage whose call was
paged out is left out); older turns have left the prompt on purpose and come back through the retriever, or
through `memory.context()` in a system message. `clear()` forgets every turn of the Memory's namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, convert_to_messages, convert_to_openai_messages
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from optimem.memory import Memory
from optimem.messages import replayable

__all__ = ["OptimemChatMessageHistory", "OptimemRetriever"]


class OptimemChatMessageHistory(BaseChatMessageHistory):
    """LangChain chat history backed by a Memory (see the module doc). The Memory is the caller's to close."""

    def __init__(self, memory: Memory) -> None:
        if not isinstance(memory, Memory):
            raise TypeError(f"OptimemChatMessageHistory takes an optimem.Memory, got {type(memory).__name__}")
        self.memory = memory

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        msgs = replayable(self.memory.recent())
        return convert_to_messages([{**m, "content": m["content"] or ""} for m in msgs])

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self.memory.add_many(convert_to_openai_messages(list(messages)))

    def clear(self) -> None:
        ids = [t.id for t in self.memory._archive.live_turns()]
        if ids:
            self.memory.forget(ids)


class OptimemRetriever(BaseRetriever):
    """Memory.recall as LangChain Documents: page_content is the turn's text (read back from its page for
    archived turns), metadata has turn_id, role, tier, confidence, score, age_seconds, age_turns."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    memory: Memory
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(
                page_content=h.text or "",
                metadata={"turn_id": h.turn_id, "role": h.role, "tier": h.tier, "confidence": h.confidence,
                          "score": h.score, "age_seconds": h.age_seconds, "age_turns": h.age_turns},
            )
            for h in self.memory.recall(query, k=self.k)
        ]
