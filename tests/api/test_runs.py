"""/v1/runs: retrieve, list (filters, cursors, order), messages, usage, steps, delete, and LLM failures.

The SDK (letta-client 1.12.1) has no ``runs.delete``; DELETE /v1/runs/{id} goes through the client's
generic ``delete`` so that it still travels the SDK's HTTP stack and error mapping.
"""

from __future__ import annotations

from typing import Any

import pytest
from letta_client import Letta, NotFoundError, UnprocessableEntityError
from tests.fakes.fake_llm import Error, FakeLLM, Hang, Text, ToolCall, ToolCalls
from tests.support import ThreadServer, async_wait_for_run, wait_for_run


def _delete_run(client: Letta, run_id: str) -> object:
    return client.delete(f"/v1/runs/{run_id}", cast_to=object)


def test_retrieve_and_unknown_ids(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="retrieve", model=handle)
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    done = wait_for_run(client, run.id)
    assert (done.id, done.agent_id, done.status, done.stop_reason, done.background) == (
        run.id,
        agent.id,
        "completed",
        "end_turn",
        True,
    )
    with pytest.raises(NotFoundError) as missing:
        client.runs.retrieve("run-00000000-0000-4000-8000-000000000000")
    assert missing.value.status_code == 404
    assert "run-00000000-0000-4000-8000-000000000000" in str(missing.value.body)
    with pytest.raises(UnprocessableEntityError) as bad:
        client.runs.retrieve("not-a-run-id")
    assert "run-<uuid4>" in str(bad.value.body)


def test_list_filters(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    a = client.agents.create(name="runs-a", model=handle)
    b = client.agents.create(name="runs-b", model=handle)
    fake_llm.script(model, Text("one"), Error(400, "bad request"))
    r1 = client.agents.messages.create_async(agent_id=a.id, input="one").id
    wait_for_run(client, r1)
    r2 = client.agents.messages.create_async(agent_id=a.id, input="two").id
    assert wait_for_run(client, r2).status == "failed"
    response = client.agents.messages.create(a.id, input="three")
    assert response.usage.run_ids is not None
    r3 = response.usage.run_ids[0]
    r4 = client.agents.messages.create_async(agent_id=b.id, input="four").id
    wait_for_run(client, r4)

    def ids(**kwargs: Any) -> list[str]:
        return [r.id for r in client.runs.list(**kwargs).items]

    assert ids(agent_id=a.id) == [r3, r2, r1]  # newest first
    assert ids(agent_id=b.id) == [r4]
    assert set(ids(agent_ids=[a.id, b.id])) == {r1, r2, r3, r4}
    assert ids(agent_id=a.id, statuses=["failed"]) == [r2]
    assert ids(agent_id=a.id, statuses=["completed"]) == [r3, r1]
    assert ids(agent_id=a.id, statuses=["completed", "failed"]) == [r3, r2, r1]
    assert ids(agent_id=a.id, stop_reason="llm_api_error") == [r2]
    assert ids(agent_id=a.id, stop_reason="end_turn") == [r3, r1]
    assert ids(agent_id=a.id, background=False) == [r3]
    assert ids(agent_id=a.id, background=True) == [r2, r1]
    assert ids(agent_id=a.id, active=True) == []


def test_list_active_runs(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="active", model=handle)
    fake_llm.script(model, Hang())
    running = client.agents.messages.create_async(agent_id=agent.id, input="slow").id
    queued = client.agents.messages.create_async(agent_id=agent.id, input="waits").id
    wait_for_run(client, running, statuses=("running",))
    fake_llm.wait_for_requests(model, 1)
    active = [r.id for r in client.runs.list(agent_id=agent.id, active=True).items]
    assert active == [queued, running]
    assert [r.id for r in client.runs.list(agent_id=agent.id, statuses=["running"]).items] == [running]
    assert [r.id for r in client.runs.list(agent_id=agent.id, statuses=["created"]).items] == [queued]
    client.agents.messages.cancel(agent.id)
    assert client.runs.list(agent_id=agent.id, active=True).items == []
    assert {r.status for r in client.runs.list(agent_id=agent.id).items} == {"cancelled"}


async def test_list_pagination_and_order(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.async_client()
    agent = await client.agents.create(name="pages", model=handle)
    runs = []
    for i in range(4):
        run = await client.agents.messages.create_async(agent_id=agent.id, input=f"m{i}")
        runs.append(run.id)
    for run_id in runs:
        await async_wait_for_run(client, run_id)

    async def ids(**kwargs: Any) -> list[str]:
        page = await client.runs.list(agent_id=agent.id, **kwargs)
        return [r.id for r in page.items]

    assert await ids(order="asc") == runs
    assert await ids(order="desc") == runs[::-1]
    assert await ids(ascending=True) == runs
    assert await ids(limit=2) == [runs[3], runs[2]]
    assert await ids(limit=2, after=runs[2]) == [runs[1], runs[0]]
    assert await ids(order="asc", limit=2, after=runs[1]) == [runs[2], runs[3]]
    assert await ids(order="asc", before=runs[2]) == runs[:2]
    assert await ids(order="desc", before=runs[1]) == [runs[3], runs[2]]
    every = [r.id async for r in client.runs.list(agent_id=agent.id, order="asc", limit=1)]
    assert every == runs


def test_run_messages_carry_run_and_step(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="run-messages", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "hi"}), Text("answer"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    wait_for_run(client, run.id)
    messages = client.runs.messages.list(run.id).items
    assert [m.message_type for m in messages] == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    assert {m.run_id for m in messages} == {run.id}
    step_ids = [s.id for s in client.runs.steps.list(run.id, order="asc").items]
    assert len(step_ids) == 2
    produced = messages[1:]
    assert [getattr(m, "step_id", None) for m in produced] == [step_ids[0], step_ids[0], step_ids[1]]
    assert [m.id for m in client.runs.messages.list(run.id, limit=2).items] == [m.id for m in messages[:2]]
    after = client.runs.messages.list(run.id, after=messages[1].id).items
    assert [m.id for m in after] == [m.id for m in messages[2:]]
    with pytest.raises(NotFoundError):
        client.runs.messages.list("run-00000000-0000-4000-8000-000000000000")


async def test_usage_and_steps(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.async_client()
    agent = await client.agents.create(name="usage", model=handle)
    fake_llm.script(
        model,
        ToolCalls([ToolCall("conversation_search", {"query": "x"})], prompt_tokens=100, completion_tokens=20),
        Text("done", prompt_tokens=130, completion_tokens=7),
    )
    run = await client.agents.messages.create_async(agent_id=agent.id, input="hi")
    await async_wait_for_run(client, run.id)
    usage = await client.runs.usage.retrieve(run.id)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (230, 27, 257)
    steps = (await client.runs.steps.list(run.id, order="asc")).items
    assert [(s.prompt_tokens, s.completion_tokens, s.total_tokens) for s in steps] == [
        (100, 20, 120),
        (130, 7, 137),
    ]
    assert {(s.model, s.run_id, s.agent_id) for s in steps} == {(model, run.id, agent.id)}
    assert [s.id for s in (await client.runs.steps.list(run.id)).items] == [s.id for s in steps][::-1]


def test_delete_finished_run(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="delete", model=handle)
    run = client.agents.messages.create_async(agent_id=agent.id, input="forget me")
    wait_for_run(client, run.id)
    _delete_run(client, run.id)
    with pytest.raises(NotFoundError):
        client.runs.retrieve(run.id)
    assert client.runs.list(agent_id=agent.id).items == []
    assert client.agents.messages.list(agent.id).items == []
    with pytest.raises(NotFoundError) as again:
        _delete_run(client, run.id)
    assert again.value.status_code == 404


def test_delete_live_run_cancels_it_first(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="delete-live", model=handle)
    fake_llm.script(model, Hang(), Text("after the delete"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="slow")
    fake_llm.wait_for_requests(model, 1)
    _delete_run(client, run.id)
    with pytest.raises(NotFoundError):
        client.runs.retrieve(run.id)

    # The agent is free again: the next run executes and ends normally.
    nxt = client.agents.messages.create_async(agent_id=agent.id, input="next")
    done = wait_for_run(client, nxt.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert len(fake_llm.requests(model)) == 2
    with pytest.raises(NotFoundError):
        client.runs.retrieve(run.id)  # no late write resurrected the deleted run
    assert [m.run_id for m in client.agents.messages.list(agent.id).items] == [nxt.id, nxt.id]


def test_llm_server_errors_are_retried_then_fail_the_run(
    server: ThreadServer, fake_llm: FakeLLM, handle: str, model: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="llm-500", model=handle)
    fake_llm.set_default(model, Error(500, "upstream exploded"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("failed", "llm_api_error")
    assert done.metadata is not None
    assert "upstream exploded" in str(done.metadata["error"])
    retries = server.settings.llm_max_retries
    assert len(fake_llm.requests(model)) == retries + 1
    (step,) = client.runs.steps.list(run.id).items
    assert (step.status, step.stop_reason) == ("failed", "llm_api_error")


def test_llm_client_error_is_not_retried(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="llm-400", model=handle)
    fake_llm.script(model, Error(400, "your request is malformed"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("failed", "llm_api_error")
    assert done.metadata is not None and "your request is malformed" in str(done.metadata["error"])
    assert len(fake_llm.requests(model)) == 1
    # The failure does not wedge the agent.
    run = client.agents.messages.create_async(agent_id=agent.id, input="again")
    assert wait_for_run(client, run.id).status == "completed"
