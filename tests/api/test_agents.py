"""Agents over the SDK: create, retrieve with includes, list (filters, cursors), update, delete."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from letta_client import Letta, NotFoundError, UnprocessableEntityError
from letta_client.types import AgentState
from tests.fakes.fake_llm import FakeLLM, Hang, Text
from tests.support import UUID4, ThreadServer, api_error, wait_for_run

MISSING_AGENT = f"agent-{uuid.uuid4()}"


def _locs(body: dict[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in body.get("errors", [])]


def test_create_returns_the_whole_agent(server: ThreadServer, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(
        name="helper",
        system="You are terse.",
        model=handle,
        memory_blocks=[
            {"label": "human", "value": "Name: Ann", "limit": 500, "description": "about the user"},
            {"label": "persona", "value": "I help."},
        ],
        tags=["a", "b"],
        metadata={"team": "x", "n": 1},
        description="a test agent",
    )
    assert re.fullmatch(f"agent-{UUID4}", agent.id)
    assert (agent.name, agent.system, agent.description) == ("helper", "You are terse.", "a test agent")
    assert agent.agent_type == "letta_v1_agent"
    assert agent.model == handle
    assert (agent.llm_config.handle, agent.llm_config.model) == (handle, model)
    assert [(b.label, b.value) for b in agent.blocks] == [("human", "Name: Ann"), ("persona", "I help.")]
    assert agent.blocks[0].limit == 500 and agent.blocks[0].description == "about the user"
    assert all(re.fullmatch(f"block-{UUID4}", b.id or "") for b in agent.blocks)
    assert sorted(agent.tags) == ["a", "b"]
    assert agent.metadata == {"team": "x", "n": 1}
    assert {"memory_insert", "memory_replace", "conversation_search"} <= {t.name for t in agent.tools}
    assert agent.created_at is not None
    assert client.agents.retrieve(agent.id).name == "helper"


def test_create_defaults(server: ThreadServer, handle: str) -> None:
    agent = server.client().agents.create(model=handle)
    assert agent.agent_type == "letta_v1_agent"
    assert agent.name and agent.system
    assert agent.blocks == [] and agent.tags == []
    explicit = server.client().agents.create(model=handle, agent_type="letta_v1_agent")
    assert explicit.agent_type == "letta_v1_agent" and explicit.id != agent.id


def test_create_rejects_bad_agent_type_and_models(server: ThreadServer, handle: str) -> None:
    client = server.client()
    body = api_error(lambda: client.agents.create(model=handle, agent_type="memgpt_agent"), 422)
    assert "memgpt_agent" in body["detail"] and "letta_v1_agent" in body["detail"]
    assert ["body", "agent_type"] in _locs(body)

    body = api_error(lambda: client.agents.create(model="nope/some-model"), 422)
    assert "unknown model provider 'nope'" in body["detail"]
    assert ["body", "model"] in _locs(body)

    body = api_error(lambda: client.agents.create(name="no-model"), 422)
    assert "model is required" in body["detail"]
    assert ["body", "model"] in _locs(body)

    body = api_error(lambda: client.agents.create(model="no-slash"), 422)
    assert "provider/model" in body["detail"]


def test_retrieve_returns_relations_only_when_included(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle, memory_blocks=[{"label": "human", "value": "v"}], tags=["t1"])

    bare = client.agents.retrieve(agent.id)
    assert (bare.blocks, bare.tools, bare.tags) == ([], [], [])
    assert bare.memory.blocks == []

    with_blocks = client.agents.retrieve(agent.id, include=["agent.blocks"])
    assert [(b.label, b.value) for b in with_blocks.blocks] == [("human", "v")]
    assert [b.label for b in with_blocks.memory.blocks] == ["human"]
    assert with_blocks.tools == [] and with_blocks.tags == []

    rest = client.agents.retrieve(agent.id, include=["agent.tools", "agent.tags"])
    assert rest.blocks == []
    assert rest.tags == ["t1"]
    assert "memory_replace" in {t.name for t in rest.tools}
    assert all(re.fullmatch("tool-[0-9a-f-]{36}", t.id) for t in rest.tools)


def _make(client: Letta, handle: str, name: str, tags: list[str]) -> AgentState:
    return client.agents.create(model=handle, name=name, tags=tags)


def test_list_filters(server: ThreadServer, handle: str) -> None:
    client = server.client()
    uniq = uuid.uuid4().hex[:10]
    t1, t2 = f"{uniq}-t1", f"{uniq}-t2"
    alpha = _make(client, handle, f"{uniq}-Alpha", [t1, t2])
    beta = _make(client, handle, f"{uniq}-beta", [t1])
    gamma = _make(client, handle, f"{uniq}-gamma", [t2])

    def ids(**filters: Any) -> set[str]:
        return {a.id for a in client.agents.list(limit=100, **filters)}

    assert ids(name=f"{uniq}-beta") == {beta.id}
    assert ids(name=f"{uniq}-bet") == set()
    assert ids(tags=[t1]) == {alpha.id, beta.id}
    assert ids(tags=[t1, t2]) == {alpha.id, beta.id, gamma.id}
    assert ids(tags=[t1, t2], match_all_tags=True) == {alpha.id}
    assert ids(tags=[t2], match_all_tags=True) == {alpha.id, gamma.id}
    assert ids(query_text=uniq) == {alpha.id, beta.id, gamma.id}
    assert ids(query_text=f"{uniq}-ALPHA") == {alpha.id}
    assert ids(query_text=uniq, tags=[t1]) == {alpha.id, beta.id}
    assert ids(query_text=f"{uniq}-%") == set()  # LIKE wildcards are literal
    listed = client.agents.list(name=f"{uniq}-Alpha", include=["agent.tags"])
    assert [sorted(a.tags) for a in listed] == [sorted([t1, t2])]


def test_list_cursor_pagination(server: ThreadServer, handle: str) -> None:
    client = server.client()
    tag = f"page-{uuid.uuid4().hex[:10]}"
    ids = [_make(client, handle, f"p{i}", [tag]).id for i in range(7)]

    def page(**params: Any) -> list[str]:
        return [a.id for a in client.agents.list(tags=[tag], **params).items]

    assert page(limit=3, order="asc") == ids[0:3]
    assert page(limit=3, order="asc", after=ids[2]) == ids[3:6]
    assert page(limit=3, order="asc", after=ids[5]) == ids[6:]
    assert page(limit=3, order="asc", after=ids[6]) == []
    assert page(limit=3) == ids[::-1][0:3]  # newest first by default
    assert page(limit=3, order="desc", after=ids[4]) == [ids[3], ids[2], ids[1]]
    assert page(limit=2, order="asc", before=ids[5]) == [ids[3], ids[4]]
    assert page(limit=2, order="desc", before=ids[1]) == [ids[3], ids[2]]
    assert page(order="asc", after=ids[1], before=ids[5]) == ids[2:5]

    forward = [a.id for a in client.agents.list(tags=[tag], limit=2, order="asc")]
    assert forward == ids
    backward = [a.id for a in client.agents.list(tags=[tag], limit=3, order="desc")]
    assert backward == ids[::-1]
    walked_back = [a.id for a in client.agents.list(tags=[tag], limit=2, order="asc", before=ids[6])]
    assert len(walked_back) == len(set(walked_back)) and set(walked_back) == set(ids[:6])

    body = api_error(lambda: client.agents.list(tags=[tag], after=MISSING_AGENT), 404)
    assert MISSING_AGENT in body["detail"]


async def test_async_client_walks_every_page(server: ThreadServer, handle: str) -> None:
    client = server.async_client()
    tag = f"apage-{uuid.uuid4().hex[:10]}"
    ids = [(await client.agents.create(model=handle, tags=[tag])).id for _ in range(5)]
    seen = [a.id async for a in client.agents.list(tags=[tag], limit=2, order="asc")]
    assert seen == ids


def test_update_fields(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    old_tag = f"old-{uuid.uuid4().hex[:10]}"
    agent = client.agents.create(model=handle, name="before", tags=[old_tag], metadata={"v": 1})
    other_model = f"{model}-b"
    updated = client.agents.update(
        agent.id,
        name="after",
        system="New system prompt.",
        tags=["new1", "new2"],
        metadata={"v": 2},
        description="changed",
        model=f"openai/{other_model}",
    )
    assert (updated.name, updated.system, updated.description) == ("after", "New system prompt.", "changed")
    assert sorted(updated.tags) == ["new1", "new2"]
    assert updated.metadata == {"v": 2}
    assert updated.model == f"openai/{other_model}" and updated.llm_config.model == other_model

    again = client.agents.retrieve(agent.id, include=["agent.tags"])
    assert (again.name, again.system, again.model) == ("after", "New system prompt.", f"openai/{other_model}")
    assert sorted(again.tags) == ["new1", "new2"]
    assert client.agents.list(tags=[old_tag]).items == []

    # The next run talks to the new model with the new system prompt.
    fake_llm.script(other_model, Text("hi"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hello")
    assert wait_for_run(client, run.id).status == "completed"
    assert fake_llm.requests(model) == []
    [request] = fake_llm.requests(other_model)
    assert request["messages"][0]["content"].startswith("New system prompt.")

    body = api_error(lambda: client.agents.update(agent.id, model="nope/x"), 422)
    assert "nope" in body["detail"] and ["body", "model"] in _locs(body)
    body = api_error(lambda: client.agents.update(agent.id, name=""), 422)
    assert ["body", "name"] in _locs(body)
    assert client.agents.retrieve(agent.id).model == f"openai/{other_model}"


def test_delete(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(
        model=handle, name=f"gone-{uuid.uuid4().hex[:10]}", memory_blocks=[{"label": "human", "value": "x"}]
    )
    client.agents.delete(agent.id)
    body = api_error(lambda: client.agents.retrieve(agent.id), 404)
    assert agent.id in body["detail"]
    api_error(lambda: client.agents.blocks.list(agent.id), 404)
    api_error(lambda: client.agents.delete(agent.id), 404)
    assert client.agents.list(name=agent.name).items == []


def test_delete_cancels_a_live_run_first(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    # One run slot: a second agent's run can only start once the deleted agent's run has let go of it.
    srv: ThreadServer = fresh_server(max_concurrent_runs=1)
    client = srv.client()
    doomed = client.agents.create(model=handle)
    fake_llm.script(model, Hang())
    slow = client.agents.messages.create_async(agent_id=doomed.id, input="take forever")
    wait_for_run(client, slow.id, statuses=("running",))
    fake_llm.wait_for_requests(model, 1)

    client.agents.delete(doomed.id)
    api_error(lambda: client.runs.retrieve(slow.id), 404)
    api_error(lambda: client.agents.retrieve(doomed.id), 404)

    survivor = client.agents.create(model=handle)
    fake_llm.script(model, Text("still alive"))
    run = client.agents.messages.create_async(agent_id=survivor.id, input="hi")
    done = wait_for_run(client, run.id, timeout=10)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert len(fake_llm.requests(model)) == 2


def test_unknown_and_malformed_agent_ids(server: ThreadServer) -> None:
    client = server.client()
    calls: dict[str, Callable[[str], object]] = {
        "retrieve": lambda agent_id: client.agents.retrieve(agent_id),
        "update": lambda agent_id: client.agents.update(agent_id, name="x"),
        "delete": lambda agent_id: client.agents.delete(agent_id),
        "blocks": lambda agent_id: client.agents.blocks.list(agent_id),
        "messages": lambda agent_id: client.agents.messages.list(agent_id),
        "async": lambda agent_id: client.agents.messages.create_async(agent_id=agent_id, input="x"),
    }
    for name, call in calls.items():
        with pytest.raises(NotFoundError) as missing:
            call(MISSING_AGENT)
        assert MISSING_AGENT in str(missing.value.body), name
        with pytest.raises(UnprocessableEntityError) as malformed:
            call("agent-123")
        body = malformed.value.body
        assert isinstance(body, dict)
        assert "agent-<uuid4>" in body["detail"], name
        assert ["path", "agent_id"] in _locs(body), name
    # Not even the right prefix: still a 422, never a 500.
    response = httpx.get(f"{server.base_url}/v1/agents/run-{uuid.uuid4()}")
    assert response.status_code == 422 and "agent-<uuid4>" in response.json()["detail"]
