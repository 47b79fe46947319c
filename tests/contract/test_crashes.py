"""Killing or stopping the process that executes runs: no run is lost, none is executed twice.

Here the engines' contracts differ, and each test asserts each engine's documented behaviour:

Both engines hand such a run back by one policy (``db/run_lifecycle.py``); they differ only in who takes
it up again (another worker at once; the embedded server at its next start):

- A run cut off before its first committed step and before any tool with effects is re-queued
  (attempt 2) and executed again, ahead of its thread's queued runs, which run afterwards, in order.
- A run cut off while a custom tool (an effect) ran is failed, never run again: the reason names the
  dead worker (distributed) or the stopped server (embedded).
- SIGTERM with a run still going after the shutdown grace period: the run is handed back (re-queued)
  and completed by another worker (distributed) or after the restart (embedded).
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

from letta_client import Letta

from tests.contract.conftest import CrashTarget
from tests.contract.helpers import agent_messages, echo
from tests.fakes.fake_llm import Delay, Echo, FakeLLM, Hang, ToolCall
from tests.support import request_texts, wait_for_run, wait_until

# The embedded engine's start-up recovery reason; the distributed reaper's names the worker.
EMBEDDED_CRASH_REASON = "the server stopped while this run was in progress"


def running(client: Letta, run_ids: list[str]) -> bool:
    return all(client.runs.retrieve(r).status == "running" for r in run_ids)


def test_killed_executor_loses_no_run_and_runs_none_twice(
    crash_engine: CrashTarget, fake_llm: FakeLLM, model: str
) -> None:
    engine = crash_engine.engine
    client = engine.client()
    # A model per agent, so the fake's request log tells the agents apart.
    agents = [client.agents.create(name=f"burst-{i}", model=f"openai/{model}-{i}") for i in range(4)]
    for i in range(len(agents)):
        # Each agent's first call hangs, so exactly the first runs are in flight at the kill. Plain
        # answers, no tool calls: an interrupted run has done nothing with effects.
        fake_llm.script(f"{model}-{i}", Hang())
        fake_llm.set_default(f"{model}-{i}", Delay(0.05, Echo()))
    per_agent = 3
    inputs = {a.id: [f"{a.name} msg {j}" for j in range(per_agent)] for a in agents}

    crash_engine.isolate()
    submitted = {
        a.id: [client.agents.messages.create_async(agent_id=a.id, input=text).id for text in inputs[a.id]]
        for a in agents
    }
    heads = [ids[0] for ids in submitted.values()]
    wait_until(lambda: running(client, heads), timeout=15, what="every agent's first run to be executing")
    for i in range(len(agents)):
        fake_llm.wait_for_requests(f"{model}-{i}", 1)
    crash_engine.kill()
    crash_engine.recover()
    client = engine.client()

    all_ids = [r for ids in submitted.values() for r in ids]
    finished = {r: wait_for_run(client, r, timeout=45) for r in all_ids}
    records = {r.id: r for r in engine.runs(all_ids)}
    for agent in agents:
        head, *rest = submitted[agent.id]
        # Handed back and executed again (by the other worker, or by the restarted server).
        assert (finished[head].status, finished[head].stop_reason) == ("completed", "end_turn")
        assert records[head].attempt == 2
        for run_id in rest:
            assert (finished[run_id].status, finished[run_id].stop_reason) == ("completed", "end_turn")
            assert records[run_id].attempt == 1
        # In order, each input stored once, one answer per completed run.
        expected: list[tuple[str, str, str | None]] = []
        for run_id, text in zip(submitted[agent.id], inputs[agent.id], strict=True):
            expected.append(("user_message", text, run_id))
            expected.append(("assistant_message", echo(text), run_id))
        assert agent_messages(client, agent.id) == expected
        ordered = engine.runs(submitted[agent.id])
        for before, after in itertools.pairwise(ordered):
            assert before.completed_at is not None and after.started_at is not None
            assert before.completed_at <= after.started_at
    # No LLM call ever saw an input twice (a re-queued run's first attempt left nothing behind).
    for i in range(len(agents)):
        for body in fake_llm.requests(f"{model}-{i}"):
            users = request_texts(body, "user")
            assert len(users) == len(set(users)), users
    # The dead worker's jobs were finished by the reaper: none is left behind.
    wait_until(lambda: engine.jobs_left(all_ids) == 0, timeout=10, what="the jobs to go")


def _waiting_tool(client: Letta, release_dir: Path) -> str:
    """A custom tool that records each start, then waits until the test removes ``release_dir/hold``."""
    name = f"wait_{uuid.uuid4().hex[:10]}"
    source = f'''
import os, time

def {name}() -> str:
    """Waits for the test to release it.
    """
    with open({str(release_dir / "starts")!r}, "a") as f:
        f.write(str(os.getppid()) + "\\n")
    deadline = time.monotonic() + 60
    while os.path.exists({str(release_dir / "hold")!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "released"
'''
    client.tools.create(source_code=source)
    return name


def test_run_killed_inside_a_tool_with_effects_fails_and_is_not_rerun(
    crash_engine: CrashTarget, fake_llm: FakeLLM, model: str, handle: str, release_dir: Path
) -> None:
    engine = crash_engine.engine
    client = engine.client()
    tool = _waiting_tool(client, release_dir)
    agent = client.agents.create(name="tool-crash", model=handle, tools=[tool])
    fake_llm.script(model, ToolCall(tool, {}))
    fake_llm.set_default(model, Echo())

    crash_engine.isolate()
    run_id = client.agents.messages.create_async(agent_id=agent.id, input="use the tool").id
    starts = release_dir / "starts"
    wait_until(starts.exists, timeout=30, what="the tool to start")
    assert engine.effects_started(run_id)
    crash_engine.kill()
    crash_engine.recover()
    client = engine.client()

    failed = wait_for_run(client, run_id, timeout=30)
    assert (failed.status, failed.stop_reason) == ("failed", "error")
    (record,) = engine.runs([run_id])
    if engine.kind == "procrastinate":
        assert record.error is not None and "worker" in record.error and "not retried" in record.error
    else:
        assert EMBEDDED_CRASH_REASON in str(record.error)
    assert record.attempt == 1
    wait_until(lambda: engine.jobs_left([run_id]) == 0, timeout=10, what="the job to go")
    # Not run again: one LLM call, one start of the tool.
    assert len(fake_llm.requests(model)) == 1
    assert len(starts.read_text().splitlines()) == 1
    # The agent goes on.
    after = wait_for_run(client, client.agents.messages.create_async(agent_id=agent.id, input="next").id)
    assert (after.status, after.stop_reason) == ("completed", "end_turn")
    assert request_texts(fake_llm.requests(model)[-1], "user") == ["use the tool", "next"]


def test_sigterm_with_a_run_going_past_the_grace_period(
    crash_engine: CrashTarget, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    engine = crash_engine.engine
    client = engine.client()
    agent = client.agents.create(name="sigterm", model=handle)
    fake_llm.script(model, Hang())
    fake_llm.set_default(model, Echo())

    crash_engine.isolate()
    run_id = client.agents.messages.create_async(agent_id=agent.id, input="long job").id
    fake_llm.wait_for_requests(model, 1, timeout=15)
    wait_for_run(client, run_id, statuses=("running",))
    # Bounded: the test fails if the process has not exited soon after the grace period (1 s).
    assert crash_engine.terminate() == 0
    crash_engine.recover()
    client = engine.client()

    run = wait_for_run(client, run_id, timeout=30)
    (record,) = engine.runs([run_id])
    # Handed back at shutdown and run again: by another worker, or by the restarted server.
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    assert record.attempt == 2
    assert agent_messages(client, agent.id) == [
        ("user_message", "long job", run_id),
        ("assistant_message", echo("long job"), run_id),
    ]
    assert [request_texts(body, "user") for body in fake_llm.requests(model)] == [
        ["long job"],
        ["long job"],
    ]
