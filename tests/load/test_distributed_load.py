"""Load on the distributed engine as deployed: an ``agenthost serve --no-worker`` subprocess (API only)
and two ``agenthost worker`` subprocesses on a fresh PostgreSQL database, against an instant fake LLM.

Many create_async calls are in flight at once over one keep-alive pool. Afterwards every run must have
completed, and per agent the runs must have executed one at a time in the order the server accepted
them (``runs.seq``): run i completed before run i+1 started, and the agent's stored messages are the
runs' messages, each run's together, in that order. The checks read the database: ``started_at`` is
not on the wire, and 10,000 runs read back over the API would dominate the test's time.

Marked ``slow`` (on 2 cores about 1 and 2 minutes); CI runs them all the same.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fakes.fake_llm import FakeLLM
from tests.support import ProcessServer, ProcessWorker

pytestmark = pytest.mark.slow

WORKERS = 2
CLIENT_CONNECTIONS = 64


@pytest.fixture(scope="module")
def instant_llm() -> Iterator[FakeLLM]:
    """A fake LLM of this module's own that keeps no request log (tens of thousands of requests)."""
    with FakeLLM(record=False) as fake:
        yield fake


@dataclass
class Cluster:
    api: ProcessServer
    workers: list[ProcessWorker]
    db_url: str

    def check_alive(self) -> None:
        for worker in self.workers:
            assert worker.alive(), f"worker {worker.pid} exited:\n{worker.log()}"
        assert self.api.proc is not None and self.api.proc.poll() is None, "the API server exited"


@pytest.fixture
def cluster(
    fresh_pg_database: Callable[[], str], instant_llm: FakeLLM, tmp_path: Path
) -> Iterator[Callable[..., Cluster]]:
    """Start the API server and the workers on a fresh database (extra env: keyword arguments)."""
    started: list[ProcessServer | ProcessWorker] = []

    def start(**env: str) -> Cluster:
        db_url = fresh_pg_database()
        full_env = {
            "AGENTHOST_ENGINE": "procrastinate",
            "LETTA_PG_URI": db_url,
            "OPENAI_BASE_URL": instant_llm.base_url,
            "OPENAI_API_KEY": "test-key",
            "AGENTHOST_LOG_LEVEL": "warning",
            "AGENTHOST_SANDBOX_POOL_SIZE": "0",
            **env,
        }
        api = ProcessServer(full_env, tmp_path / "data", args=("--no-worker",))
        started.append(api)
        api.start()
        workers = []
        for i in range(WORKERS):
            worker = ProcessWorker(full_env, tmp_path / f"worker-{i}.log", concurrency=32)
            started.append(worker)
            workers.append(worker.start())
        return Cluster(api, workers, db_url)

    yield start
    for proc in reversed(started):
        proc.stop()


def http_client(cluster: Cluster) -> httpx.AsyncClient:
    # Idle connections expire on the client before uvicorn closes them (after 5 s), so no request
    # is ever sent on a connection the server is closing.
    limits = httpx.Limits(
        max_connections=CLIENT_CONNECTIONS, max_keepalive_connections=CLIENT_CONNECTIONS, keepalive_expiry=1.0
    )
    return httpx.AsyncClient(base_url=cluster.api.base_url, limits=limits, timeout=120.0)


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    assert resp.status_code == 200, f"POST {path} → {resp.status_code}: {resp.text}"
    result: dict[str, Any] = resp.json()
    return result


async def post_all(
    client: httpx.AsyncClient, requests: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """All requests at once, at most one per pooled connection in flight: httpcore's pool scans its
    whole wait queue per request, so thousands of waiting requests would cost the client seconds each."""
    slots = asyncio.Semaphore(CLIENT_CONNECTIONS)

    async def one(path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with slots:
            return await post(client, path, body)

    return await asyncio.gather(*(one(path, body) for path, body in requests))


async def create_agents(client: httpx.AsyncClient, count: int) -> list[str]:
    body = {"model": "openai/gpt-4o-mini"}
    agents = await post_all(client, [("/v1/agents/", {**body, "name": f"load-{i}"}) for i in range(count)])
    return [a["id"] for a in agents]


async def submit(client: httpx.AsyncClient, calls: list[tuple[str, str]]) -> dict[str, str]:
    """All create_async calls at once; run id → its input text."""
    runs = await post_all(
        client, [(f"/v1/agents/{agent}/messages/async", {"input": text}) for agent, text in calls]
    )
    assert all(r["status"] == "created" for r in runs)
    return {r["id"]: text for r, (_, text) in zip(runs, calls, strict=True)}


async def wait_all_ended(db: asyncpg.Connection, cluster: Cluster, expected: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        row = await db.fetchrow(
            "SELECT count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')) AS ended, "
            "count(*) AS total FROM runs"
        )
        assert row is not None
        if row["ended"] == expected:
            assert row["total"] == expected
            return
        cluster.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{row['ended']} of {expected} runs ended within {within_s:g} s")
        await asyncio.sleep(0.2)


async def check_agent_order(db: asyncpg.Connection, submitted: dict[str, str]) -> int:
    """Per agent: runs one at a time in ``seq`` order, and the stored messages grouped by run in that
    order, each run's being its own input and the fake's answer. Returns the number of agents seen."""
    runs = await db.fetch(
        "SELECT agent_id, id, status, stop_reason, created_at, started_at, completed_at FROM runs "
        "ORDER BY agent_id, seq"
    )
    messages = await db.fetch(
        "SELECT agent_id, run_id, message_type, body FROM messages WHERE run_id IS NOT NULL "
        "ORDER BY agent_id, seq"
    )
    assert {r["id"] for r in runs} == submitted.keys()
    failed = [(r["id"], r["status"], r["stop_reason"]) for r in runs if r["status"] != "completed"]
    assert not failed, f"{len(failed)} runs did not complete, e.g. {failed[:5]}"
    by_agent = {a: list(rs) for a, rs in itertools.groupby(runs, key=lambda r: r["agent_id"])}
    messages_by_agent = {a: list(ms) for a, ms in itertools.groupby(messages, key=lambda m: m["agent_id"])}
    for agent, agent_runs in by_agent.items():
        for before, after in itertools.pairwise(agent_runs):
            assert after["started_at"] >= before["completed_at"], (
                f"agent {agent}: run {after['id']} started at {after['started_at']}, before run "
                f"{before['id']} (accepted earlier) completed at {before['completed_at']}"
            )
        created = [r["created_at"] for r in agent_runs]
        assert created == sorted(created), f"agent {agent}: created_at does not follow seq"
        # The messages, grouped by run: one group per run, in the runs' order.
        agent_messages = messages_by_agent.get(agent, [])
        groups = [
            (run_id, list(ms)) for run_id, ms in itertools.groupby(agent_messages, key=lambda m: m["run_id"])
        ]
        assert [run_id for run_id, _ in groups] == [r["id"] for r in agent_runs], (
            f"agent {agent}: the stored messages are not grouped by run in acceptance order"
        )
        for run_id, group in groups:
            assert [m["message_type"] for m in group] == ["user_message", "assistant_message"], run_id
            assert json.loads(group[0]["body"])["content"] == submitted[run_id], run_id
    return len(by_agent)


def test_a_thousand_runs_at_once_on_one_agent_run_in_acceptance_order(
    cluster: Callable[..., Cluster],
) -> None:
    c = cluster(AGENTHOST_MAX_QUEUED_RUNS_PER_AGENT="2000")
    asyncio.run(load(c, agents_n=1, per_agent=1000))


def test_ten_thousand_runs_over_500_agents_complete_in_order_per_agent(
    cluster: Callable[..., Cluster],
) -> None:
    c = cluster()
    asyncio.run(load(c, agents_n=500, per_agent=20))


async def load(c: Cluster, *, agents_n: int, per_agent: int) -> None:
    """``per_agent`` runs on each of ``agents_n`` new agents, all submitted at once, interleaved over
    the agents as independent clients would send them; then the checks."""
    async with http_client(c) as client, asyncpg.create_pool(c.db_url, min_size=1, max_size=1) as pool:
        agents = await create_agents(client, agents_n)
        calls = [(agent, f"message {i} for {agent}") for i in range(per_agent) for agent in agents]
        try:
            submitted = await submit(client, calls)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n--- the API server's log, last lines ---\n{c.api.stderr()[-6000:]}"
            ) from None
        async with pool.acquire() as db:
            await wait_all_ended(db, c, len(calls), within_s=900)
            assert await check_agent_order(db, submitted) == agents_n
