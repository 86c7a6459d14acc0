"""Adapters that put an optimem Memory where a framework expects its own memory class.

    optimem.integrations.langchain    LangChain / LangGraph: chat message history and a retriever
                                      (pip install 'optimem[langchain]')
"""
