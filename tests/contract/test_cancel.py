"""Cancelling: a queued run never executes; a running one stops, stays cancelled, and frees its agent."""

from __future__ import annotations

from tests.contract.conftest import Engine
from tests.contract.helpers import agent_messages, echo
from tests.fakes.fake_llm import Delay, Echo, FakeLLM, Hang, Text
from tests.support import request_texts, start_running, wait_for_run, wait_until


def test_cancelled_queued_run_never_executes(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="cancel-queued", model=handle)
    fake_llm.script(model, Hang())
    fake_llm.set_default(model, Echo())
    head = start_running(client, fake_llm, model, agent.id, "first")
    queued = client.agents.messages.create_async(agent_id=agent.id, input="second").id
    assert client.runs.retrieve(queued).status == "created"

    assert client.agents.messages.cancel(agent.id, run_ids=[queued]) == {queued: "cancelled"}
    run = client.runs.retrieve(queued)
    assert (run.status, run.stop_reason) == ("cancelled", "cancelled")
    assert client.runs.retrieve(head).status == "running"
    # Free the agent (the head run hangs), then the next run goes through.
    client.agents.messages.cancel(agent.id, run_ids=[head])
    third = client.agents.messages.create_async(agent_id=agent.id, input="third").id
    assert wait_for_run(client, third).status == "completed"

    requests = fake_llm.requests(model)
    assert len(requests) == 2
    assert request_texts(requests[1], "user") == ["first", "third"]
    assert list(client.runs.messages.list(queued)) == []
    (record,) = engine.runs([queued])
    assert (record.status, record.started_at) == ("cancelled", None)
    # An ended run leaves no job behind, cancelled or not.
    wait_until(lambda: engine.jobs_left([head, queued, third]) == 0, timeout=10, what="the jobs to go")


def test_cancelled_running_run_stays_cancelled_and_frees_the_agent(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="cancel-running", model=handle)
    # Should the call not be aborted, its late answer arrives while the run behind it waits for the
    # agent (one run at a time): by the time that run completes, the late write has been tried.
    fake_llm.script(model, Delay(1.0, Text("too late")))
    fake_llm.set_default(model, Echo())
    running = start_running(client, fake_llm, model, agent.id, "first")
    following = client.agents.messages.create_async(agent_id=agent.id, input="second").id

    assert client.agents.messages.cancel(agent.id, run_ids=[running]) == {running: "cancelled"}
    run = client.runs.retrieve(running)
    assert (run.status, run.stop_reason) == ("cancelled", "cancelled")
    done = wait_for_run(client, following, timeout=15)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")

    run = client.runs.retrieve(running)
    assert (run.status, run.stop_reason) == ("cancelled", "cancelled")
    cancelled, after = engine.runs([running, following])
    assert cancelled.completed_at is not None and after.started_at is not None
    assert cancelled.completed_at <= after.started_at
    assert agent_messages(client, agent.id) == [
        ("user_message", "first", running),
        ("user_message", "second", following),
        ("assistant_message", echo("second"), following),
    ]


def test_cancelling_a_hung_run_aborts_its_llm_call(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="cancel-hung", model=handle)
    fake_llm.script(model, Hang())
    fake_llm.set_default(model, Echo())
    hung = start_running(client, fake_llm, model, agent.id, "first")
    following = client.agents.messages.create_async(agent_id=agent.id, input="second").id

    client.agents.messages.cancel(agent.id, run_ids=[hung])
    # The hung call never answers: the next run of the agent completing shows it was aborted.
    assert wait_for_run(client, following, timeout=15).status == "completed"
    assert client.runs.retrieve(hung).status == "cancelled"
    wait_until(lambda: engine.jobs_left([hung, following]) == 0, timeout=10, what="the jobs to go")
