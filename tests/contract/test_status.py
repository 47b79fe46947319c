"""Status transitions, the same on both engines: created → running → completed, or failed."""

from __future__ import annotations

from tests.contract.conftest import Engine
from tests.contract.helpers import agent_messages, echo
from tests.fakes.fake_llm import Delay, Echo, Error, FakeLLM, Text
from tests.support import wait_for_run


def test_created_then_running_then_completed(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="status", model=handle)
    fake_llm.script(model, Delay(0.5, Echo()))

    run = client.agents.messages.create_async(agent_id=agent.id, input="hello")
    assert run.status == "created"
    running = wait_for_run(client, run.id, statuses=("running",))
    assert running.stop_reason is None and running.completed_at is None
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert done.completed_at is not None and done.created_at is not None
    assert done.completed_at >= done.created_at
    (record,) = engine.runs([run.id])
    assert record.started_at is not None and record.completed_at is not None
    assert record.started_at <= record.completed_at
    assert record.attempt == 1
    assert agent_messages(client, agent.id) == [
        ("user_message", "hello", run.id),
        ("assistant_message", echo("hello"), run.id),
    ]


def test_llm_error_fails_the_run_with_llm_api_error(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="status-error", model=handle)
    fake_llm.script(model, Error(400, "the fake refuses"), Text("fine again"))

    failed = wait_for_run(client, client.agents.messages.create_async(agent_id=agent.id, input="one").id)
    assert (failed.status, failed.stop_reason) == ("failed", "llm_api_error")
    assert failed.metadata is not None and "the fake refuses" in str(failed.metadata["error"])
    # The agent goes on with its next run.
    after = wait_for_run(client, client.agents.messages.create_async(agent_id=agent.id, input="two").id)
    assert (after.status, after.stop_reason) == ("completed", "end_turn")


def test_sync_route_returns_the_runs_messages(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="status-sync", model=handle)
    fake_llm.script(model, Echo())

    response = client.agents.messages.create(agent_id=agent.id, input="ping")
    assert response.stop_reason is not None and response.stop_reason.stop_reason == "end_turn"
    assert [(m.message_type, getattr(m, "content", None)) for m in response.messages][-1] == (
        "assistant_message",
        echo("ping"),
    )
