"""Core memory over the SDK: blocks by label, their limits, and edits made by the agent's own memory tools."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from letta_client import Letta
from letta_client.types import AgentState
from tests.fakes.fake_llm import FakeLLM, Text, ToolCall
from tests.support import UUID4, ThreadServer, api_error, wait_for_run


def _agent(client: Letta, handle: str, human: str = "Name: Ann\nLikes: tea", limit: int = 200) -> AgentState:
    return client.agents.create(
        model=handle,
        memory_blocks=[
            {"label": "human", "value": human, "limit": limit, "description": "facts about the user"},
            {"label": "persona", "value": "I am a helper."},
            {"label": "notes", "value": "", "limit": 50},
        ],
    )


def _system(request: dict[str, Any]) -> str:
    first = request["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


def test_list_and_retrieve_by_label(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = _agent(client, handle)
    blocks = client.agents.blocks.list(agent.id)
    assert [b.label for b in blocks] == ["human", "persona", "notes"]
    assert [b.id for b in blocks] == [b.id for b in agent.blocks]

    human = client.agents.blocks.retrieve("human", agent_id=agent.id)
    assert re.fullmatch(f"block-{UUID4}", human.id or "")
    assert (human.value, human.limit, human.description) == (
        "Name: Ann\nLikes: tea",
        200,
        "facts about the user",
    )
    assert client.agents.blocks.retrieve("notes", agent_id=agent.id).value == ""

    first = client.agents.blocks.list(agent.id, limit=2, order="asc")
    assert [b.label for b in first.items] == ["human", "persona"]
    rest = client.agents.blocks.list(agent.id, limit=2, order="asc", after=first.items[-1].id)
    assert [b.label for b in rest.items] == ["notes"]


def test_update_by_label_reaches_the_next_prompt(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = _agent(client, handle)
    updated = client.agents.blocks.update(
        "human", agent_id=agent.id, value="Name: Bea", limit=300, description="the user"
    )
    assert (updated.value, updated.limit, updated.description) == ("Name: Bea", 300, "the user")
    assert updated.id == agent.blocks[0].id
    again = client.agents.blocks.retrieve("human", agent_id=agent.id)
    assert (again.value, again.limit) == ("Name: Bea", 300)
    state = client.agents.retrieve(agent.id, include=["agent.blocks"])
    assert [b.value for b in state.blocks if b.label == "human"] == ["Name: Bea"]

    fake_llm.script(model, Text("ok"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    assert wait_for_run(client, run.id).status == "completed"
    system = _system(fake_llm.requests(model)[0])
    assert "Name: Bea" in system and "Name: Ann" not in system
    assert "the user" in system and "I am a helper." in system


def test_update_over_the_limit_is_rejected(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = _agent(client, handle, limit=20)
    body = api_error(lambda: client.agents.blocks.update("human", agent_id=agent.id, value="x" * 21), 422)
    assert "21 characters" in body["detail"] and "limit of 20" in body["detail"]
    assert ["body", "value"] in [e["loc"] for e in body["errors"]]

    body = api_error(lambda: client.agents.blocks.update("human", agent_id=agent.id, limit=5), 422)
    assert "limit of 5" in body["detail"]
    assert ["body", "limit"] in [e["loc"] for e in body["errors"]]

    body = api_error(lambda: client.agents.blocks.update("human", agent_id=agent.id, limit=0), 422)
    assert ["body", "limit"] in [e["loc"] for e in body["errors"]]

    unchanged = client.agents.blocks.retrieve("human", agent_id=agent.id)
    assert (unchanged.value, unchanged.limit) == ("Name: Ann\nLikes: tea", 20)
    exact = client.agents.blocks.update("human", agent_id=agent.id, value="y" * 20)
    assert exact.value == "y" * 20


def test_unknown_label_and_agent(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = _agent(client, handle)
    body = api_error(lambda: client.agents.blocks.retrieve("nope", agent_id=agent.id), 404)
    assert "nope" in body["detail"]
    body = api_error(lambda: client.agents.blocks.update("nope", agent_id=agent.id, value="x"), 404)
    assert "nope" in body["detail"]
    missing = f"agent-{uuid.uuid4()}"
    body = api_error(lambda: client.agents.blocks.retrieve("human", agent_id=missing), 404)
    assert missing in body["detail"]
    api_error(lambda: client.agents.blocks.list(missing), 404)


EDITS = [
    pytest.param(
        "memory_replace",
        {"label": "human", "old_str": "Ann", "new_str": "Ann Lee"},
        "Name: Ann Lee\nLikes: tea",
        id="replace",
    ),
    pytest.param(
        "memory_insert",
        {"label": "human", "new_str": "Lives: Oslo", "insert_line": 1},
        "Name: Ann\nLives: Oslo\nLikes: tea",
        id="insert-middle",
    ),
    pytest.param(
        "memory_insert",
        {"label": "human", "new_str": "Lives: Oslo"},
        "Name: Ann\nLikes: tea\nLives: Oslo",
        id="insert-end",
    ),
    pytest.param(
        "memory_rethink",
        {"label": "human", "new_memory": "Name: Ann (prefers coffee now)"},
        "Name: Ann (prefers coffee now)",
        id="rethink",
    ),
]


@pytest.mark.parametrize(("tool", "args", "expected"), EDITS)
def test_memory_tool_edits_are_visible(
    server: ThreadServer,
    fake_llm: FakeLLM,
    model: str,
    handle: str,
    tool: str,
    args: dict[str, Any],
    expected: str,
) -> None:
    client = server.client()
    agent = _agent(client, handle)
    call = ToolCall(tool, args)
    fake_llm.script(model, call, Text("noted"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="remember this")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")

    assert client.agents.blocks.retrieve("human", agent_id=agent.id).value == expected
    first, second = fake_llm.requests(model)
    assert "Name: Ann\nLikes: tea" in _system(first)
    assert expected in _system(second)
    assert f"chars_current={len(expected)}" in _system(second)
    tool_msg = second["messages"][-1]
    assert (tool_msg["role"], tool_msg["tool_call_id"]) == ("tool", call.id)

    returns = [m for m in client.runs.messages.list(run.id) if m.message_type == "tool_return_message"]
    assert [(r.tool_call_id, r.status) for r in returns] == [(call.id, "success")]

    # The edit is durable: the next run starts from it.
    fake_llm.script(model, Text("hello again"))
    run2 = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    assert wait_for_run(client, run2.id).status == "completed"
    assert expected in _system(fake_llm.requests(model)[2])


def test_edit_over_the_limit_becomes_a_toolapi_error(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = _agent(client, handle, human="Name: Ann", limit=30)
    call = ToolCall("memory_insert", {"label": "human", "new_str": "x" * 40})
    fake_llm.script(model, call, Text("that was too long"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="remember a lot")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")

    assert client.agents.blocks.retrieve("human", agent_id=agent.id).value == "Name: Ann"
    _, second = fake_llm.requests(model)
    tool_msg = second["messages"][-1]
    assert (tool_msg["role"], tool_msg["tool_call_id"]) == ("tool", call.id)
    assert "limit of 30" in tool_msg["content"]
    assert "Name: Ann" in _system(second) and "x" * 40 not in _system(second)

    messages = client.runs.messages.list(run.id)
    returns = [m for m in messages if m.message_type == "tool_return_message"]
    assert [(r.tool_call_id, r.status) for r in returns] == [(call.id, "error")]
    assert "limit of 30" in returns[0].tool_return
    assert messages.items[-1].message_type == "assistant_message"


def test_edit_of_an_unknown_label_is_a_toolapi_error(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = _agent(client, handle)
    call = ToolCall("memory_replace", {"label": "ghost", "old_str": "a", "new_str": "b"})
    fake_llm.script(model, call, Text("ok"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="edit")
    assert wait_for_run(client, run.id).stop_reason == "end_turn"
    tool_msg = fake_llm.requests(model)[1]["messages"][-1]
    assert tool_msg["tool_call_id"] == call.id and "ghost" in tool_msg["content"]
    assert [b.value for b in client.agents.blocks.list(agent.id)] == [b.value for b in agent.blocks]
