"""Blocks shared by agents: attach/detach, a block's agents, and edits seen by every agent that has it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

import pytest
from letta_client import APIStatusError, Letta
from letta_client.types import AgentState, BlockResponse
from tests.fakes.fake_llm import FakeLLM, Text, ToolCall
from tests.support import ThreadServer, api_error, unique_model, wait_for_run


def _agent(client: Letta, handle: str, **kwargs: Any) -> AgentState:
    return client.agents.create(
        model=handle, memory_blocks=[{"label": "human", "value": "Name: Ann"}], **kwargs
    )


def _system(request: dict[str, Any]) -> str:
    first = request["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


def _run(client: Letta, agent_id: str, text: str = "hi") -> str:
    run = client.agents.messages.create_async(agent_id=agent_id, input=text)
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    return run.id


def _team(client: Letta, **kwargs: Any) -> BlockResponse:
    return client.blocks.create(label="team", value="Team: Ann, Bo", **kwargs)


def test_attach_and_detach(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = _agent(client, handle)
    block = _team(client, description="who is on the team")

    state = client.agents.blocks.attach(block.id, agent_id=agent.id)
    assert state.id == agent.id
    assert [b.label for b in state.blocks] == ["human", "team"]
    assert state.blocks[1].id == block.id and state.blocks[1].value == "Team: Ann, Bo"
    assert [b.label for b in state.memory.blocks] == ["human", "team"]
    assert [b.id for b in client.agents.blocks.list(agent.id)] == [agent.blocks[0].id, block.id]
    assert client.agents.blocks.retrieve("team", agent_id=agent.id).id == block.id

    # The same block again, or another block with a label the agent already has: 409, nothing changes.
    body = api_error(lambda: client.agents.blocks.attach(block.id, agent_id=agent.id), 409)
    assert "team" in body["detail"]
    other_human = client.blocks.create(label="human", value="Name: Cy")
    body = api_error(lambda: client.agents.blocks.attach(other_human.id, agent_id=agent.id), 409)
    assert "human" in body["detail"]
    assert [b.label for b in client.agents.blocks.list(agent.id)] == ["human", "team"]

    state = client.agents.blocks.detach(block.id, agent_id=agent.id)
    assert [b.label for b in state.blocks] == ["human"]
    api_error(lambda: client.agents.blocks.retrieve("team", agent_id=agent.id), 404)
    # Detached, the block lives on, and can come back.
    assert client.blocks.retrieve(block.id).value == "Team: Ann, Bo"
    body = api_error(lambda: client.agents.blocks.detach(block.id, agent_id=agent.id), 404)
    assert "not attached" in body["detail"]
    assert [b.label for b in client.agents.blocks.attach(block.id, agent_id=agent.id).blocks] == [
        "human",
        "team",
    ]

    missing_block, missing_agent = f"block-{uuid.uuid4()}", f"agent-{uuid.uuid4()}"
    body = api_error(lambda: client.agents.blocks.attach(missing_block, agent_id=agent.id), 404)
    assert missing_block in body["detail"]
    body = api_error(lambda: client.agents.blocks.detach(missing_block, agent_id=agent.id), 404)
    assert missing_block in body["detail"]
    body = api_error(lambda: client.agents.blocks.attach(block.id, agent_id=missing_agent), 404)
    assert missing_agent in body["detail"]
    api_error(lambda: client.agents.blocks.attach("block-1", agent_id=agent.id), 422)
    api_error(lambda: client.agents.blocks.detach("nope", agent_id=agent.id), 422)


def test_agents_of_a_block(server: ThreadServer, handle: str) -> None:
    client = server.client()
    block = _team(client)
    assert client.blocks.agents.list(block.id).items == []
    agents = [_agent(client, handle, name=f"a{i}") for i in range(3)]
    for agent in agents:
        client.agents.blocks.attach(block.id, agent_id=agent.id)
    ids = [a.id for a in agents]

    listed = client.blocks.agents.list(block.id)
    assert [a.id for a in listed] == ids[::-1]  # newest first by default
    assert [a.name for a in listed] == ["a2", "a1", "a0"]
    assert listed.items[0].blocks == []  # no relationships unless asked for
    assert [a.id for a in client.blocks.agents.list(block.id, order="asc")] == ids
    with_blocks = client.blocks.agents.list(block.id, include=["agent.blocks", "agent.tags"], order="asc")
    assert [[b.label for b in a.blocks] for a in with_blocks] == [["human", "team"]] * 3

    page = client.blocks.agents.list(block.id, order="asc", limit=2)
    assert [a.id for a in page.items] == ids[:2]
    rest = client.blocks.agents.list(block.id, order="asc", limit=2, after=page.items[-1].id)
    assert [a.id for a in rest.items] == ids[2:]
    assert [a.id for a in client.blocks.agents.list(block.id, order="asc", limit=1)] == ids

    client.agents.blocks.detach(block.id, agent_id=ids[1])
    client.agents.delete(ids[2])
    assert [a.id for a in client.blocks.agents.list(block.id)] == [ids[0]]


def test_relabel_must_not_clash_on_any_agent(server: ThreadServer, handle: str) -> None:
    client = server.client()
    block = _team(client)
    one = _agent(client, handle)
    two = client.agents.create(
        model=handle, memory_blocks=[{"label": "crew", "value": "Crew: Di"}], block_ids=[block.id]
    )
    client.agents.blocks.attach(block.id, agent_id=one.id)

    # Agent two already has "crew", agent one has "human": either name is taken by some agent.
    for label in ("crew", "human"):
        body = api_error(lambda label=label: client.blocks.update(block.id, label=label), 409)
        assert label in body["detail"]
        api_error(
            lambda label=label: client.agents.blocks.update("team", agent_id=one.id, label=label),
            409,
        )
    assert client.blocks.retrieve(block.id).label == "team"

    assert client.agents.blocks.update("team", agent_id=one.id, label="squad").label == "squad"
    for agent in (one, two):
        assert client.agents.blocks.retrieve("squad", agent_id=agent.id).id == block.id
        api_error(lambda agent=agent: client.agents.blocks.retrieve("team", agent_id=agent.id), 404)
    # A label freed by the rename can be taken by another block.
    other = client.blocks.create(label="team", value="another team")
    assert "team" in [b.label for b in client.agents.blocks.attach(other.id, agent_id=two.id).blocks]


def test_delete_detaches_from_every_agent(server: ThreadServer, handle: str) -> None:
    client = server.client()
    block = _team(client)
    one = _agent(client, handle, block_ids=[block.id])
    two = _agent(client, handle, block_ids=[block.id])
    client.blocks.delete(block.id)
    for agent in (one, two):
        state = client.agents.retrieve(agent.id, include=["agent.blocks"])
        assert [b.label for b in state.blocks] == ["human"]
        api_error(lambda agent=agent: client.agents.blocks.retrieve("team", agent_id=agent.id), 404)
    api_error(lambda: client.blocks.agents.list(block.id), 404)


def test_an_edit_by_one_agent_reaches_the_other(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    other_model = unique_model()
    block = _team(client)
    one = _agent(client, handle, block_ids=[block.id])
    two = _agent(client, f"openai/{other_model}", block_ids=[block.id])

    fake_llm.script(other_model, Text("hello"))
    _run(client, two.id)
    assert "Team: Ann, Bo" in _system(fake_llm.requests(other_model)[0])

    call = ToolCall("memory_replace", {"label": "team", "old_str": "Bo", "new_str": "Bo, Cy"})
    fake_llm.script(model, call, Text("noted"))
    run_id = _run(client, one.id, "Cy joined the team")
    returns = [m for m in client.runs.messages.list(run_id) if m.message_type == "tool_return_message"]
    assert [(r.tool_call_id, r.status) for r in returns] == [(call.id, "success")]

    assert client.blocks.retrieve(block.id).value == "Team: Ann, Bo, Cy"
    assert client.agents.blocks.retrieve("team", agent_id=two.id).value == "Team: Ann, Bo, Cy"
    fake_llm.script(other_model, Text("hello again"))
    _run(client, two.id)
    system = _system(fake_llm.requests(other_model)[1])
    assert "Team: Ann, Bo, Cy" in system

    # An edit through the API reaches both agents' next prompts too.
    client.blocks.update(block.id, value="Team: everyone")
    fake_llm.script(model, Text("ok"))
    fake_llm.script(other_model, Text("ok"))
    _run(client, one.id)
    _run(client, two.id)
    assert "Team: everyone" in _system(fake_llm.requests(model)[-1])
    assert "Team: everyone" in _system(fake_llm.requests(other_model)[-1])


READ_ONLY_EDITS = [
    pytest.param("memory_replace", {"label": "rules", "old_str": "polite", "new_str": "rude"}, id="replace"),
    pytest.param("memory_insert", {"label": "rules", "new_str": "Swear a lot."}, id="insert"),
    pytest.param("memory_rethink", {"label": "rules", "new_memory": "No rules."}, id="rethink"),
]


@pytest.mark.parametrize(("tool", "args"), READ_ONLY_EDITS)
def test_memory_tools_refuse_read_only_blocks(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tool: str, args: dict[str, Any]
) -> None:
    client = server.client()
    rules = client.blocks.create(label="rules", value="Be polite.", read_only=True)
    agent = _agent(client, handle, block_ids=[rules.id])
    call = ToolCall(tool, args)
    fake_llm.script(model, call, Text("I may not change that"))
    run_id = _run(client, agent.id, "change your rules")

    first, second = fake_llm.requests(model)
    assert "read_only=true" in _system(first)
    tool_msg = second["messages"][-1]
    assert (tool_msg["role"], tool_msg["tool_call_id"]) == ("tool", call.id)
    assert "read-only" in tool_msg["content"]
    returns = [m for m in client.runs.messages.list(run_id) if m.message_type == "tool_return_message"]
    assert [(r.tool_call_id, r.status) for r in returns] == [(call.id, "error")]
    assert "read-only" in returns[0].tool_return
    assert client.blocks.retrieve(rules.id).value == "Be polite."
    assert "Be polite." in _system(second)

    # Read-only binds the agent's tools, not the API.
    assert client.blocks.update(rules.id, value="Be kind.").value == "Be kind."


def test_tool_edit_over_a_shared_blocks_limit(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    block = client.blocks.create(label="log", value="day 1", limit=25)
    agent = _agent(client, handle, block_ids=[block.id])
    call = ToolCall("memory_insert", {"label": "log", "new_str": "x" * 30})
    fake_llm.script(model, call, Text("too long"))
    run_id = _run(client, agent.id, "log everything")

    tool_msg = fake_llm.requests(model)[1]["messages"][-1]
    assert tool_msg["tool_call_id"] == call.id and "limit of 25" in tool_msg["content"]
    returns = [m for m in client.runs.messages.list(run_id) if m.message_type == "tool_return_message"]
    assert [(r.tool_call_id, r.status) for r in returns] == [(call.id, "error")]
    assert "limit of 25" in returns[0].tool_return
    assert client.blocks.retrieve(block.id).value == "day 1"


async def test_racing_relabel_and_attach_never_share_a_label(server: ThreadServer, handle: str) -> None:
    """A relabel and an attach that both claim one label on one agent: one wins, the other gets a 409."""
    client = server.async_client()
    agent = await client.agents.create(model=handle)
    for i in range(8):
        label = f"race-{i}"
        mine = await client.blocks.create(label=f"mine-{i}", value="a")
        await client.agents.blocks.attach(mine.id, agent_id=agent.id)
        theirs = await client.blocks.create(label=label, value="b")

        async def status(call: Awaitable[object]) -> int:
            try:
                await call
            except APIStatusError as exc:
                # The losing request names the label, whether the check or the database caught it.
                assert isinstance(exc.body, dict) and label in exc.body["detail"], exc.body  # noqa: B023
                return exc.status_code
            return 200

        results = await asyncio.gather(
            status(client.blocks.update(mine.id, label=label)),
            status(client.agents.blocks.attach(theirs.id, agent_id=agent.id)),
        )
        assert sorted(results) == [200, 409], results
        labels = [b.label for b in (await client.agents.blocks.list(agent.id, limit=1000)).items]
        assert labels.count(label) == 1
        # What the agent sees by label is what the block itself says.
        by_label = await client.agents.blocks.retrieve(label, agent_id=agent.id)
        assert by_label.label == label and by_label.id == (mine.id if results[0] == 200 else theirs.id)
