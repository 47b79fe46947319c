"""Durability across process death: real ``agenthost serve`` subprocesses, killed and restarted.

On PostgreSQL each test gets a database of its own: start-up recovery hands back every run left
``running`` in its database, which must not touch the shared test server's runs.
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
    fake_llm.script(model, Hang(), Text("one done"), Text("two done"), Text("three done"))
    in_flight = client.agents.messages.create_async(agent_id=agent.id, input="one")
    fake_llm.wait_for_requests(model, 1)
    wait_for_run(client, in_flight.id, statuses=("running",))
    queued = [client.agents.messages.create_async(agent_id=agent.id, input=t) for t in ("two", "three")]
    assert [client.runs.retrieve(r.id).status for r in queued] == ["created", "created"]

    first.kill()
    assert first.proc is not None and first.proc.returncode == -signal.SIGKILL

    # The run cut off before its first step had done nothing: it is re-queued, ahead of the others.
    client = serve(processes, server_env, data_dir).client()
    done = [wait_for_run(client, r.id) for r in (in_flight, *queued)]
    assert [(r.status, r.stop_reason) for r in done] == [("completed", "end_turn")] * 3
    assert all(r.completed_at is not None for r in done)
    assert done[0].completed_at < done[1].completed_at < done[2].completed_at  # type: ignore[operator]
    requests = fake_llm.requests(model)
    assert len(requests) == 4
    # Its first attempt left nothing behind: the input is in the history once.
    assert [user_texts(r) for r in requests[1:]] == [["one"], ["one", "two"], ["one", "two", "three"]]
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


def _sandbox_workers(parent: int) -> set[int]:
    """The tool sandbox's worker processes whose parent is ``parent`` (from /proc)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"sandbox/_worker.py" in cmdline:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sandbox_warm_workers_die_with_a_killed_server(
    server_env: dict[str, str], processes: list[ProcessServer], data_dir: Path
) -> None:
    server = serve(processes, {**server_env, "AGENTHOST_SANDBOX_POOL_SIZE": "2"}, data_dir)
    assert server.proc is not None
    pid = server.proc.pid
    wait_until(lambda: len(_sandbox_workers(pid)) == 2, timeout=30, what="two warm sandbox workers")
    workers = _sandbox_workers(pid)
    server.kill()
    wait_until(lambda: not any(_alive(w) for w in workers), timeout=10, what="the warm workers to exit")
