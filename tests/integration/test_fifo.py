"""The embedded engine's ordering: one run at a time per agent in arrival order, agents in parallel.

Overlap is checked from the outside: a run's start is its ``completed_at`` minus its
``total_duration_ns``, and each LLM request must already carry the exchanges of the runs before it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from letta_client.types.agents.run import Run
from tests.fakes.fake_llm import Delay, FakeLLM, Text
from tests.support import ThreadServer, request_texts, wait_for_run, wait_until

# Wall clock (completed_at) against monotonic durations: allow for rounding, not for real overlap.
CLOCK_SLACK = timedelta(milliseconds=3)


def completed_at(run: Run) -> datetime:
    assert run.completed_at is not None, run
    return run.completed_at


def started_at(run: Run) -> datetime:
    assert run.total_duration_ns is not None, run
    return completed_at(run) - timedelta(microseconds=run.total_duration_ns / 1000)


def assert_no_overlap(runs: list[Run]) -> None:
    """Runs (in execution order) each start only after the previous one completed."""
    for before, after in itertools.pairwise(runs):
        assert started_at(after) >= completed_at(before) - CLOCK_SLACK, (
            f"{after.id} started at {started_at(after)} before {before.id} completed at {before.completed_at}"
        )


def test_twenty_runs_on_one_agent_run_in_submission_order(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="fifo", model=handle)
    n = 20
    fake_llm.script(model, *(Delay(0.02, Text(f"reply {i}")) for i in range(n)))

    submitted = [client.agents.messages.create_async(agent_id=agent.id, input=f"msg {i}") for i in range(n)]
    assert all(r.status == "created" for r in submitted)
    runs = [wait_for_run(client, r.id, timeout=30) for r in submitted]

    assert [(r.status, r.stop_reason) for r in runs] == [("completed", "end_turn")] * n
    created = [r.created_at for r in runs if r.created_at is not None]
    completed = [completed_at(r) for r in runs]
    assert len(created) == n
    assert created == sorted(created)
    assert completed == sorted(completed) and len(set(completed)) == n
    assert_no_overlap(runs)

    # The fake saw the requests in submission order, each carrying every earlier exchange.
    requests = fake_llm.requests(model)
    assert len(requests) == n
    for i, body in enumerate(requests):
        assert request_texts(body, "user") == [f"msg {j}" for j in range(i + 1)]
        assert request_texts(body, "assistant") == [f"reply {j}" for j in range(i)]

    for i, run in enumerate(runs):
        messages = client.runs.messages.list(run.id)
        assert [(m.message_type, getattr(m, "content", None)) for m in messages] == [
            ("user_message", f"msg {i}"),
            ("assistant_message", f"reply {i}"),
        ]


def test_different_agents_run_in_parallel(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agents = [client.agents.create(name=f"parallel-{i}", model=handle) for i in range(5)]
    fake_llm.script(model, *(Delay(0.3, Text("done")) for _ in agents))

    t0 = time.monotonic()
    submitted = [client.agents.messages.create_async(agent_id=a.id, input="go") for a in agents]
    runs = [wait_for_run(client, r.id) for r in submitted]
    elapsed = time.monotonic() - t0

    assert [r.status for r in runs] == ["completed"] * 5
    # Serially this takes at least 5 x 0.3 s; the bound is loose on purpose (a concurrency check).
    assert elapsed < 1.2, f"5 agents with 0.3 s LLM calls took {elapsed:.2f}s: they did not run in parallel"
    assert len(fake_llm.requests(model)) == 5


def test_max_concurrent_runs_one_serialises_agents(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    server = fresh_server(max_concurrent_runs=1)
    client = server.client()
    agents = [client.agents.create(name=f"serial-{i}", model=handle) for i in range(3)]
    agent_ids = [a.id for a in agents]
    fake_llm.script(model, *(Delay(0.15, Text(f"answer {i}")) for i in range(3)))

    submitted = [client.agents.messages.create_async(agent_id=a.id, input="go") for a in agents]
    max_running = 0

    def all_done() -> bool:
        nonlocal max_running
        running = client.runs.list(agent_ids=agent_ids, statuses=["running"]).items
        max_running = max(max_running, len(running))
        finished = client.runs.list(agent_ids=agent_ids, statuses=["completed", "failed", "cancelled"]).items
        return len(finished) == len(submitted)

    wait_until(all_done, timeout=15, what="all three runs to finish")
    assert max_running <= 1
    runs = sorted((client.runs.retrieve(r.id) for r in submitted), key=completed_at)
    assert [r.status for r in runs] == ["completed"] * 3
    assert_no_overlap(runs)
    # Only one LLM call was ever in flight: each reply went to the run that asked next.
    assert len(fake_llm.requests(model)) == 3
