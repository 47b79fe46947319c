"""Per-agent FIFO and exclusion, and agents in parallel: measured from what the runs record.

Order is read from the messages' ``seq_id`` and the runs' ``started_at``/``completed_at`` rows (both
engines run on the same host here, so the executors' clocks agree), never from wall-clock sleeps.
"""

from __future__ import annotations

import itertools

from tests.contract.conftest import Engine
from tests.contract.helpers import agent_messages, echo
from tests.fakes.fake_llm import Delay, Echo, FakeLLM, Hang
from tests.support import request_texts, wait_for_run


def test_runs_of_one_agent_execute_one_at_a_time_in_submission_order(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="fifo", model=handle)
    n = 30
    fake_llm.set_default(model, Delay(0.02, Echo()))
    inputs = [f"msg {i}" for i in range(n)]

    submitted = [client.agents.messages.create_async(agent_id=agent.id, input=text).id for text in inputs]
    runs = [wait_for_run(client, run_id, timeout=60) for run_id in submitted]

    assert [(r.status, r.stop_reason) for r in runs] == [("completed", "end_turn")] * n
    records = engine.runs(submitted)
    for before, after in itertools.pairwise(records):
        assert before.completed_at is not None and after.started_at is not None
        assert before.completed_at <= after.started_at, (
            f"{after.id} started at {after.started_at} before {before.id} completed at {before.completed_at}"
        )
    assert all(r.attempt == 1 for r in records)
    # Each run's input and answer, in submission order, each stored once.
    assert agent_messages(client, agent.id) == [
        row
        for run_id, text in zip(submitted, inputs, strict=True)
        for row in (("user_message", text, run_id), ("assistant_message", echo(text), run_id))
    ]
    # Each LLM call carried exactly the exchanges of the runs before it.
    requests = fake_llm.requests(model)
    assert len(requests) == n
    for i, body in enumerate(requests):
        assert request_texts(body, "user") == inputs[: i + 1]
        assert request_texts(body, "assistant") == [echo(t) for t in inputs[:i]]


def test_different_agents_run_at_the_same_time(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agents = [client.agents.create(name=f"parallel-{i}", model=handle) for i in range(4)]
    fake_llm.set_default(model, Hang())

    submitted = [client.agents.messages.create_async(agent_id=a.id, input="go").id for a in agents]
    # Four LLM calls in flight at once (none ever answers): the four runs are executing together.
    fake_llm.wait_for_requests(model, len(agents), timeout=15)
    records = engine.runs(submitted)
    assert [(r.status, r.completed_at is None) for r in records] == [("running", True)] * len(agents)
    for agent, run_id in zip(agents, submitted, strict=True):
        client.agents.messages.cancel(agent.id, run_ids=[run_id])
    assert [wait_for_run(client, r).status for r in submitted] == ["cancelled"] * len(agents)


def test_conversations_of_one_agent_run_together_each_in_its_own_order(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="conversations", model=handle)
    conversations = [client.conversations.create(agent_id=agent.id) for _ in range(3)]
    per_conversation = 5
    fake_llm.set_default(model, Delay(0.05, Echo()))
    submitted: dict[str, list[str]] = {c.id: [] for c in conversations}
    for i in range(per_conversation):
        for c in conversations:
            run = client.agents.messages.create_async(
                agent_id=agent.id, input=f"{c.id} {i}", extra_body={"conversation_id": c.id}
            )
            submitted[c.id].append(run.id)
    for run_ids in submitted.values():
        assert all(wait_for_run(client, r, timeout=60).status == "completed" for r in run_ids)

    overlapped = False
    for c in conversations:
        records = engine.runs(submitted[c.id])
        for before, after in itertools.pairwise(records):
            assert before.completed_at is not None and after.started_at is not None
            assert before.completed_at <= after.started_at, f"{after.id} overlapped {before.id}"
        texts = [
            m.content  # type: ignore[union-attr]
            for m in client.conversations.messages.list(c.id, order="asc")
            if m.message_type == "user_message"
        ]
        assert texts == [f"{c.id} {i}" for i in range(per_conversation)]
        for other in conversations:
            if other.id == c.id:
                continue
            theirs = engine.runs(submitted[other.id])
            overlapped |= any(
                a.started_at < b.completed_at and b.started_at < a.completed_at  # type: ignore[operator]
                for a in records
                for b in theirs
            )
    # Runs of different conversations of the one agent executed at the same time.
    assert overlapped
