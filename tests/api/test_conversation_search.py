"""The built-in conversation_search tool finds earlier messages by their text."""

from __future__ import annotations

from typing import Any

from tests.fakes.fake_llm import FakeLLM, Text, ToolCall
from tests.support import ThreadServer, wait_for_run


def _search_result(fake_llm: FakeLLM, model: str) -> str:
    """The tool message the LLM saw after its conversation_search call (the last request)."""
    messages: list[dict[str, Any]] = fake_llm.requests(model)[-1]["messages"]
    tool = [m for m in messages if m["role"] == "tool"][-1]
    return str(tool["content"])


def test_search_matches_text_not_json(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="searcher", model=handle)
    fake_llm.script(model, Text("noted"), Text("also noted"))
    for text in ("Ich mag Käse sehr", "the weather is fine"):
        run = client.agents.messages.create_async(agent_id=agent.id, input=text)
        assert wait_for_run(client, run.id).status == "completed"

    cases = [
        ({"query": "KÄSE"}, "Ich mag Käse sehr"),  # case-insensitive, non-ASCII
        ({"query": "content"}, "No messages found"),  # a JSON key name is not text
        ({"query": "noted", "roles": ["user"]}, "No messages found"),
        ({"query": "noted", "roles": ["assistant"]}, "assistant: noted"),
    ]
    for args, expected in cases:
        fake_llm.script(model, ToolCall("conversation_search", args), Text("ok"))
        run = client.agents.messages.create_async(agent_id=agent.id, input="search please")
        assert wait_for_run(client, run.id).stop_reason == "end_turn"
        assert expected in _search_result(fake_llm, model), args


def test_search_limit(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="searcher", model=handle)
    for i in range(3):
        run = client.agents.messages.create_async(agent_id=agent.id, input=f"apple number {i}")
        wait_for_run(client, run.id)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "apple", "limit": 2}), Text("ok"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="find")
    wait_for_run(client, run.id)
    result = _search_result(fake_llm, model)
    assert result.count("apple number") == 2
    assert "apple number 2" in result and "apple number 0" not in result  # newest first
