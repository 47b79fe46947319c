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

from agenthost.schemas.blocks import DEFAULT_BLOCK_LIMIT


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


def test_label_with_a_slash(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle, memory_blocks=[{"label": "org/notes", "value": "v1"}])
    assert client.agents.blocks.retrieve("org/notes", agent_id=agent.id).value == "v1"
    assert client.agents.blocks.update("org/notes", agent_id=agent.id, value="v2").value == "v2"
    api_error(lambda: client.agents.blocks.retrieve("org/other", agent_id=agent.id), 404)


# -- /v1/blocks: blocks on their own ---------------------------------------------------------------


def _token() -> str:
    return uuid.uuid4().hex[:12]


def test_block_crud(server: ThreadServer) -> None:
    client = server.client()
    made = client.blocks.create(
        label="project",
        value="Project: agenthost",
        limit=500,
        description="what we work on",
        read_only=True,
        metadata={"team": "core"},
    )
    assert re.fullmatch(f"block-{UUID4}", made.id)
    assert (made.label, made.value, made.limit, made.description, made.read_only, made.metadata) == (
        "project",
        "Project: agenthost",
        500,
        "what we work on",
        True,
        {"team": "core"},
    )
    assert made.is_template is False
    assert client.blocks.retrieve(made.id) == made

    default = client.blocks.create(label="scratch", value="")
    assert (default.limit, default.read_only, default.description) == (DEFAULT_BLOCK_LIMIT, False, None)

    updated = client.blocks.update(
        made.id, value="Project: agenthost v2", limit=600, description=None, metadata={"team": "x"}
    )
    assert (updated.value, updated.limit, updated.description, updated.metadata) == (
        "Project: agenthost v2",
        600,
        None,
        {"team": "x"},
    )
    # Fields not sent are left alone (read_only stays on; the label is unchanged).
    assert (updated.read_only, updated.label) == (True, "project")
    assert client.blocks.update(made.id, read_only=False, label="proj").label == "proj"
    assert client.blocks.retrieve(made.id).read_only is False

    client.blocks.delete(made.id)
    body = api_error(lambda: client.blocks.retrieve(made.id), 404)
    assert made.id in body["detail"]
    api_error(lambda: client.blocks.delete(made.id), 404)
    api_error(lambda: client.blocks.update(made.id, value="x"), 404)
    assert client.blocks.retrieve(default.id).label == "scratch"


def test_block_validation(server: ThreadServer) -> None:
    client = server.client()
    body = api_error(lambda: client.blocks.create(label="l", value="x" * 11, limit=10), 422)
    assert "11 characters" in body["detail"] and "limit of 10" in body["detail"]
    assert ["body", "value"] in [e["loc"] for e in body["errors"]]
    api_error(lambda: client.blocks.create(label="l", value="x", limit=0), 422)
    api_error(lambda: client.blocks.create(label="", value="x"), 422)
    body = api_error(lambda: client.blocks.create(label="l", value="x", tags=["a"]), 422)
    assert ["body", "tags"] in [e["loc"] for e in body["errors"]]

    block = client.blocks.create(label="l", value="abcdef", limit=10)
    body = api_error(lambda: client.blocks.update(block.id, value="x" * 11), 422)
    assert "limit of 10" in body["detail"]
    body = api_error(lambda: client.blocks.update(block.id, limit=5), 422)
    assert ["body", "limit"] in [e["loc"] for e in body["errors"]]
    api_error(lambda: client.blocks.update(block.id, tags=["a"]), 422)
    assert (client.blocks.retrieve(block.id).value, client.blocks.retrieve(block.id).limit) == ("abcdef", 10)
    # Lowering the limit and the value together is one consistent change.
    assert client.blocks.update(block.id, value="abc", limit=3).limit == 3

    for call in (
        lambda: client.blocks.retrieve("block-nope"),
        lambda: client.blocks.update("nope", value="x"),
        lambda: client.blocks.delete("agent-x"),
        lambda: client.blocks.agents.list("block-1"),
    ):
        body = api_error(call, 422)
        assert "block-<uuid4>" in body["detail"]
    missing = f"block-{uuid.uuid4()}"
    api_error(lambda: client.blocks.retrieve(missing), 404)
    api_error(lambda: client.blocks.agents.list(missing), 404)


def test_list_filters(server: ThreadServer, handle: str) -> None:
    client = server.client()
    tok = _token()
    a = client.blocks.create(
        label=f"{tok}-human", value=f"Likes Green TEA {tok}", description="About the USER"
    )
    b = client.blocks.create(label=f"{tok}-persona", value=f"A calm helper {tok}", description="who I am")
    c = client.blocks.create(label=f"{tok}-notes", value=f"tea notes {tok}")
    ids = [a.id, b.id, c.id]

    def listed(**filters: Any) -> list[str]:
        return [x.id for x in client.blocks.list(label_search=tok, **filters)]

    assert listed() == ids  # oldest first by default
    assert listed(order="desc") == ids[::-1]
    assert [x.id for x in client.blocks.list(label=f"{tok}-persona")] == [b.id]
    assert [x.id for x in client.blocks.list(label_search=f"{tok}-HUM")] == [a.id]
    assert listed(value_search="green tea") == [a.id]
    assert listed(value_search="TEA") == [a.id, c.id]
    assert listed(description_search="user") == [a.id]
    assert listed(description_search="nobody") == []
    # Searches are substrings, not patterns: LIKE wildcards match themselves only.
    assert listed(value_search="%") == []
    assert listed(value_search="_") == []

    # Agent counts: a on two agents, b on one, c on none.
    one = client.agents.create(model=handle, block_ids=[a.id, b.id])
    client.agents.create(model=handle, block_ids=[a.id])
    assert listed(connected_to_agents_count_gt=0) == [a.id, b.id]
    assert listed(connected_to_agents_count_gt=1) == [a.id]
    assert listed(connected_to_agents_count_lt=1) == [c.id]
    assert listed(connected_to_agents_count_eq=[1]) == [b.id]
    assert listed(connected_to_agents_count_eq=[0, 2]) == [a.id, c.id]
    assert listed(connected_to_agents_count_gt=0, connected_to_agents_count_lt=2) == [b.id]
    client.agents.blocks.detach(b.id, agent_id=one.id)
    assert listed(connected_to_agents_count_eq=[0]) == [b.id, c.id]

    # No block here is a template, has tags or identities: those filters match none. The project
    # filter narrows nothing (one project per server).
    assert listed(templates_only=True) == []
    assert listed(name="some template") == []
    assert listed(tags=["x"]) == []
    assert listed(tags=["x"], match_all_tags=True) == []
    assert listed(identifier_keys=["k"]) == []
    assert listed(project_id="project-1") == ids
    assert listed(order_by="created_at") == ids

    api_error(lambda: client.blocks.list(label="bad label!"), 422)
    api_error(lambda: client.blocks.list(value_search="x" * 201), 422)
    api_error(lambda: client.blocks.list(limit=0), 422)
    api_error(lambda: client.blocks.list(order_by="updated_at"), 422)  # type: ignore[arg-type]


def test_list_pagination(server: ThreadServer) -> None:
    client = server.client()
    tok = _token()
    ids = [client.blocks.create(label=f"{tok}-{i}", value=str(i)).id for i in range(5)]

    first = client.blocks.list(label_search=tok, limit=2)
    assert [x.id for x in first.items] == ids[:2]
    second = client.blocks.list(label_search=tok, limit=2, after=first.items[-1].id)
    assert [x.id for x in second.items] == ids[2:4]
    # The SDK's auto-pagination follows `after` until a page comes back empty.
    assert [x.id for x in client.blocks.list(label_search=tok, limit=2)] == ids

    assert [x.id for x in client.blocks.list(label_search=tok, order="desc", limit=2)] == ids[::-1]
    back = client.blocks.list(label_search=tok, limit=2, before=ids[3])
    assert [x.id for x in back.items] == ids[1:3]
    between = client.blocks.list(label_search=tok, after=ids[0], before=ids[4])
    assert [x.id for x in between.items] == ids[1:4]
    desc_after = client.blocks.list(label_search=tok, order="desc", limit=2, after=ids[3])
    assert [x.id for x in desc_after.items] == [ids[2], ids[1]]

    body = api_error(lambda: client.blocks.list(after=f"block-{uuid.uuid4()}").items, 404)
    assert "cursor" in body["detail"]
