"""Durability across process death: real ``agenthost serve`` subprocesses, killed and restarted.

On PostgreSQL each test gets a database of its own: start-up recovery fails every run left ``running``
in its database, which must not touch the shared test server's runs.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from letta_client import Letta
from tests.fakes.fake_llm import Delay, FakeLLM, Hang, Text
from tests.support import ProcessServer, wait_for_run, wait_until


@pytest.fixture
def server_env(backend: str, fake_llm: FakeLLM, fresh_pg_database: Callable[[], str]) -> dict[str, str]:
    """Environment for ``agenthost serve``: the fake LLM, and a database of the test's own."""
    env = {"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "x", "AGENTHOST_LOG_LEVEL": "warning"}
    if backend == "postgres":
        env["AGENTHOST_DATABASE_URL"] = fresh_pg_database()
    return env


@pytest.fixture
def processes() -> Iterator[list[ProcessServer]]:
    """Servers started by the test; any still alive at teardown are stopped."""
    started: list[ProcessServer] = []
    yield started
    for proc in started:
        proc.stop()


def serve(processes: list[ProcessServer], env: dict[str, str], data_dir: Path) -> ProcessServer:
    proc = ProcessServer(env, data_dir)
    processes.append(proc)
    return proc.start()


def user_texts(body: dict[str, object]) -> list[str]:
    messages = body["messages"]
    assert isinstance(messages, list)
    return [str(m["content"]) for m in messages if m["role"] == "user"]


def active_runs(client: Letta, agent_id: str) -> list[str]:
    return [r.id for r in client.runs.list(agent_id=agent_id, active=True).items]


def test_killed_server_recovers_runs_on_restart(
    server_env: dict[str, str],
    processes: list[ProcessServer],
    data_dir: Path,
    fake_llm: FakeLLM,
    model: str,
    handle: str,
) -> None:
    first = serve(processes, server_env, data_dir)
    client = first.client()
    agent = client.agents.create(name="crash", model=handle)
    fake_llm.script(model, Hang(), Text("two done"), Text("three done"))
    in_flight = client.agents.messages.create_async(agent_id=agent.id, input="one")
    fake_llm.wait_for_requests(model, 1)
    wait_for_run(client, in_flight.id, statuses=("running",))
    queued = [client.agents.messages.create_async(agent_id=agent.id, input=t) for t in ("two", "three")]
    assert [client.runs.retrieve(r.id).status for r in queued] == ["created", "created"]

    first.kill()
    assert first.proc is not None and first.proc.returncode == -signal.SIGKILL

    client = serve(processes, server_env, data_dir).client()
    crashed = client.runs.retrieve(in_flight.id)
    assert (crashed.status, crashed.stop_reason) == ("failed", "error")
    assert crashed.completed_at is not None
    assert crashed.metadata is not None and "server stopped" in str(crashed.metadata["error"])

    done = [wait_for_run(client, r.id) for r in queued]
    assert [(r.status, r.stop_reason) for r in done] == [("completed", "end_turn")] * 2
    assert done[0].completed_at is not None and done[1].completed_at is not None
    assert done[0].completed_at < done[1].completed_at
    requests = fake_llm.requests(model)
    assert len(requests) == 3
    assert user_texts(requests[1]) == ["one", "two"]
    assert user_texts(requests[2]) == ["one", "two", "three"]
    assert active_runs(client, agent.id) == []
    # The agent is usable again after recovery.
    fake_llm.script(model, Text("fine"))
    again = client.agents.messages.create_async(agent_id=agent.id, input="four")
    assert wait_for_run(client, again.id).status == "completed"


def test_second_server_on_the_same_database_refuses_to_start(
    backend: str, server_env: dict[str, str], processes: list[ProcessServer], tmp_path: Path
) -> None:
    first = serve(processes, server_env, tmp_path / "one")
    # SQLite: the same data dir. PostgreSQL: another data dir, but the same database.
    second = ProcessServer(server_env, tmp_path / ("one" if backend == "sqlite" else "two"))
    processes.append(second)
    second.start(wait=False)
    assert second.proc is not None
    try:
        code = second.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("a second agenthost on the same database kept running")
    assert code == 2
    stderr = second.stderr()
    assert "another agenthost server" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    if backend == "sqlite":
        assert str(tmp_path / "one") in stderr, stderr
    else:
        assert "PostgreSQL database" in stderr, stderr
    # The first server is unaffected.
    assert first.client().health() is not None


def test_sigterm_finishes_the_in_flight_run(
    server_env: dict[str, str],
    processes: list[ProcessServer],
    data_dir: Path,
    fake_llm: FakeLLM,
    model: str,
    handle: str,
) -> None:
    first = serve(processes, server_env, data_dir)
    client = first.client()
    agent = client.agents.create(name="graceful", model=handle)
    fake_llm.script(model, Delay(0.5, Text("finished in time")), Text("after restart"))
    in_flight = client.agents.messages.create_async(agent_id=agent.id, input="one")
    fake_llm.wait_for_requests(model, 1)
    queued = client.agents.messages.create_async(agent_id=agent.id, input="two")

    assert first.proc is not None
    first.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once its graceful shutdown is done.
    assert first.proc.wait(timeout=30) in (0, -signal.SIGTERM), first.stderr()

    client = serve(processes, server_env, data_dir).client()
    run = client.runs.retrieve(in_flight.id)
    assert (run.status, run.stop_reason) == ("completed", "end_turn")
    messages = client.runs.messages.list(in_flight.id)
    assert [(m.message_type, getattr(m, "content", None)) for m in messages][-1] == (
        "assistant_message",
        "finished in time",
    )
    # The run still queued at shutdown was kept, and runs after the restart.
    assert wait_for_run(client, queued.id).status == "completed"
    wait_until(lambda: active_runs(client, agent.id) == [], what="no active runs")
