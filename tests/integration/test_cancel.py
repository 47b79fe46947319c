"""Cancelling runs: queued runs never execute, running runs stop promptly and are never overwritten.

A run is made slow with the fake's ``Hang``/``Delay`` replies; every wait is for an observable state.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from letta_client import NotFoundError
from tests.fakes.fake_llm import Delay, FakeLLM, Hang, Text
from tests.support import ThreadServer, start_running, wait_for_run


def user_texts(body: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in body["messages"] if m["role"] == "user"]


def test_cancel_queued_run_is_immediate_and_never_executes(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="cancel-queued", model=handle)
    fake_llm.script(model, Hang(), Text("after"))
    first = start_running(client, fake_llm, model, agent.id, "first")
    queued = client.agents.messages.create_async(agent_id=agent.id, input="second")
    assert client.runs.retrieve(queued.id).status == "created"

    assert client.agents.messages.cancel(agent.id, run_ids=[queued.id]) == {queued.id: "cancelled"}
    run = client.runs.retrieve(queued.id)
    assert (run.status, run.stop_reason) == ("cancelled", "cancelled")
    assert run.completed_at is not None
    assert client.runs.retrieve(first).status == "running"

    client.agents.messages.cancel(agent.id, run_ids=[first])
    third = client.agents.messages.create_async(agent_id=agent.id, input="third")
    assert wait_for_run(client, third.id).status == "completed"

    # The queue moved past the cancelled run without ever starting it.
    requests = fake_llm.requests(model)
    assert len(requests) == 2
    assert all("second" not in user_texts(body) for body in requests)
    assert user_texts(requests[1]) == ["first", "third"]
    assert list(client.runs.messages.list(queued.id)) == []
    assert client.runs.retrieve(queued.id).status == "cancelled"


def test_cancel_running_run_aborts_llm_call_promptly(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="cancel-running", model=handle)
    fake_llm.script(model, Hang(), Text("next answer"))
    running = start_running(client, fake_llm, model, agent.id, "first")
    # Queued behind the hanging run: it can start only once the cancelled run has left the loop.
    following = client.agents.messages.create_async(agent_id=agent.id, input="second")

    t0 = time.monotonic()
    assert client.agents.messages.cancel(agent.id, run_ids=[running]) == {running: "cancelled"}
    run = client.runs.retrieve(running)
    assert (run.status, run.stop_reason) == ("cancelled", "cancelled")
    # The hung LLM call never answers: the next run completing shows the call was aborted.
    done = wait_for_run(client, following.id, timeout=5)
    elapsed = time.monotonic() - t0
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert elapsed < 2.0, f"the cancelled run took {elapsed:.2f}s to leave the loop"
    assert user_texts(fake_llm.requests(model)[1]) == ["first", "second"]
    assert client.runs.retrieve(running).status == "cancelled"


def test_cancel_records_the_agents_last_stop_reason(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    """Regression: a cancel is a run's end like any other; the agent's last stop reason follows it.

    It used to keep the previous run's ``end_turn``: the cancel skipped the end's bookkeeping, and the
    loop's own later write was fenced out.
    """
    client = server.client()
    agent = client.agents.create(name="cancel-last-stop", model=handle)
    fake_llm.script(model, Text("done"), Hang(), Hang())
    first = client.agents.messages.create_async(agent_id=agent.id, input="first")
    assert wait_for_run(client, first.id).stop_reason == "end_turn"
    assert client.agents.retrieve(agent.id).last_stop_reason == "end_turn"

    running = start_running(client, fake_llm, model, agent.id, "second")
    assert client.agents.messages.cancel(agent.id, run_ids=[running]) == {running: "cancelled"}
    after = client.agents.retrieve(agent.id)
    assert after.last_stop_reason == "cancelled"
    assert after.last_run_completion is not None
    assert after.last_run_completion >= client.runs.retrieve(running).completed_at  # type: ignore[operator]

    # A queued run cancelled through the conversation-less cancel-all path records it as well.
    third = start_running(client, fake_llm, model, agent.id, "third")
    client.agents.messages.cancel(agent.id)
    assert client.runs.retrieve(third).status == "cancelled"
    assert client.agents.retrieve(agent.id).last_stop_reason == "cancelled"


def test_cancelled_run_is_not_overwritten_by_a_late_answer(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="cancel-late", model=handle)
    # The next run's reply comes after the moment the cancelled run's LLM call would have answered.
    fake_llm.script(model, Delay(1.0, Text("late answer")), Delay(1.2, Text("next answer")))
    running = start_running(client, fake_llm, model, agent.id, "first")

    t0 = time.monotonic()
    assert client.agents.messages.cancel(agent.id) == {running: "cancelled"}
    assert client.runs.retrieve(running).status == "cancelled"
    following = client.agents.messages.create_async(agent_id=agent.id, input="second")
    fake_llm.wait_for_requests(model, 2, timeout=5)
    assert time.monotonic() - t0 < 2.0
    done = wait_for_run(client, following.id)
    assert done.status == "completed"

    run = client.runs.retrieve(running)
    assert (run.status, run.stop_reason) == ("cancelled", "cancelled")
    run_messages = [m.message_type for m in client.runs.messages.list(running)]
    assert run_messages == ["user_message"]
    history = client.agents.messages.list(agent.id, order="asc")
    contents = [getattr(m, "content", None) for m in history if m.message_type == "assistant_message"]
    assert contents == ["next answer"]
    second_request = fake_llm.requests(model)[1]
    assert all("late answer" not in str(m.get("content")) for m in second_request["messages"])


def test_cancel_with_run_ids_cancels_only_those(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="cancel-some", model=handle)
    fake_llm.script(model, Text("done"), Hang(), Text("third done"))
    finished = client.agents.messages.create_async(agent_id=agent.id, input="zero")
    assert wait_for_run(client, finished.id).status == "completed"
    running = start_running(client, fake_llm, model, agent.id, "first")
    second = client.agents.messages.create_async(agent_id=agent.id, input="second")
    third = client.agents.messages.create_async(agent_id=agent.id, input="third")

    # The answer maps each named run to its status now: terminal runs keep theirs.
    outcome = client.agents.messages.cancel(agent.id, run_ids=[second.id, finished.id])
    assert outcome == {second.id: "cancelled", finished.id: "completed"}
    assert client.runs.retrieve(running).status == "running"
    assert client.runs.retrieve(third.id).status == "created"
    assert client.runs.retrieve(finished.id).status == "completed"

    assert client.agents.messages.cancel(agent.id, run_ids=[running]) == {running: "cancelled"}
    assert wait_for_run(client, third.id).status == "completed"
    assert client.runs.retrieve(second.id).status == "cancelled"
    # Nothing active is left: a cancel without run ids has nothing to do.
    assert client.agents.messages.cancel(agent.id) == {}


def test_cancel_unknown_run_id_is_not_found(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="cancel-unknown", model=handle)
    missing = "run-00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFoundError) as info:
        client.agents.messages.cancel(agent.id, run_ids=[missing])
    assert info.value.status_code == 404
    assert missing in str(info.value.body)


def test_sync_create_of_cancelled_run_returns_cancelled(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="cancel-sync", model=handle)
    fake_llm.script(model, Hang())
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(client.agents.messages.create, agent_id=agent.id, input="wait for me")
        fake_llm.wait_for_requests(model, 1)
        active = client.runs.list(agent_id=agent.id, active=True).items
        assert [r.status for r in active] == ["running"]
        assert client.agents.messages.cancel(agent.id) == {active[0].id: "cancelled"}
        response = pending.result(timeout=5)
    assert response.stop_reason.stop_reason == "cancelled"
    assert all(m.message_type != "assistant_message" for m in response.messages)
    assert client.runs.retrieve(active[0].id).status == "cancelled"
