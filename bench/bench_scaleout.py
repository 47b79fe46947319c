"""Scale-out benchmark: the distributed (procrastinate) engine with 1 and 2 worker processes, and the
embedded engine for comparison, all on PostgreSQL against the fake LLM (it answers at once).

For each configuration, on a fresh database, it prints:

- drain rate: runs queued over many agents while no worker runs, then the workers start; runs/s from
  the first run's ``started_at`` to the last one's ``completed_at`` (the workers' capacity alone);
- live throughput: the same load submitted over HTTP while the workers run; runs/s from the first
  submit to the last ``completed_at`` (API and workers share the host);
- per-agent hand-off gap p50/p95: many runs queued on one agent; for consecutive runs, run i's
  ``completed_at`` → run i+1's ``started_at``;
- idle dispatch latency p50/p95: create_async on an idle system (the previous run done, then a random
  pause) → the run's ``started_at``.

    cd /work/main && .venv/bin/python bench/bench_scaleout.py [--pg postgresql://postgres@127.0.0.1:5432/test]
        [--configs procrastinate-1,procrastinate-2,embedded] [--json out.json]

The API server (``agenthost serve --no-worker``) and the workers (``agenthost worker``) are separate
processes; the embedded configuration is one ``agenthost serve``. Timestamps are read from the
database (``runs.started_at`` is not on the wire); all processes share this host's wall clock.
It measures; it asserts no timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench_core import (
    HANG_MODEL,
    MODEL,
    REPO,
    _raise_interrupt,
    fake_llm,
    free_port,
    pct,
    pg_database,
    stop_process,
)

# (key, label, unit, target)
ROWS: list[tuple[str, str, str, str]] = [
    ("drain_runs_per_s", "drain rate (runs queued first)", "runs/s", "≥ 1,000 (2 workers)"),
    ("live_runs_per_s", "live throughput (submitted while running)", "runs/s", ""),
    ("submit_runs_per_s", "  of which submit rate", "runs/s", ""),
    ("handoff_p50_ms", "hand-off gap p50 (one agent)", "ms", ""),
    ("handoff_p95_ms", "hand-off gap p95 (one agent)", "ms", "≤ 150"),
    ("handoff_max_ms", "hand-off gap max", "ms", ""),
    ("idle_dispatch_p50_ms", "idle dispatch p50 (create_async → started)", "ms", ""),
    ("idle_dispatch_p95_ms", "idle dispatch p95", "ms", ""),
]
ACTIVE_SQL = "SELECT count(*) FROM runs WHERE status IN ('created', 'running') AND agent_id = ANY($1)"
SPAN_SQL = (
    "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'completed') AS ok, "
    "min(started_at) AS first_start, max(completed_at) AS last_end FROM runs WHERE agent_id = ANY($1)"
)


@dataclass(frozen=True)
class Config:
    name: str
    engine: str  # "procrastinate" | "embedded"
    workers: int  # separate worker processes (procrastinate)

    @classmethod
    def parse(cls, text: str) -> Config:
        if text == "embedded":
            return cls(text, "embedded", 0)
        engine, _, count = text.partition("-")
        if engine != "procrastinate" or not count.isdigit():
            raise argparse.ArgumentTypeError(f"unknown configuration {text!r}")
        return cls(text, engine, int(count))


@dataclass
class Cluster:
    """The processes of one configuration, started with one environment."""

    env: dict[str, str]
    workdir: Path
    concurrency: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    base_url: str = ""

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agenthost", *args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def serve(self, *, worker: bool) -> None:
        port = free_port()
        args = ["serve", "--port", str(port), "--data-dir", str(self.workdir / "data")]
        proc = self._spawn([*args, *([] if worker else ["--no-worker"])], "serve.log")
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=1.0) as client:
            while True:
                if proc.poll() is not None:
                    log = (self.workdir / "serve.log").read_text()
                    raise RuntimeError(f"agenthost serve exited with {proc.returncode}:\n{log}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/v1/health/").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError("agenthost serve did not become healthy within 60 s")
                time.sleep(0.01)

    def start_workers(self, count: int) -> None:
        for i in range(count):
            self._spawn(["worker", "--concurrency", str(self.concurrency)], f"worker-{i}.log")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} (logs in {self.workdir})")


@contextlib.contextmanager
def cluster(config: Config, llm_url: str, pg_url: str, workdir: Path, concurrency: int) -> Iterator[Cluster]:
    env = {
        **os.environ,
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "x",
        "AGENTHOST_LOG_LEVEL": "warning",
        "LETTA_PG_URI": pg_url,
        "AGENTHOST_ENGINE": config.engine,
        # The bench queues thousands of runs on one agent at most; the default bound is not the subject.
        "AGENTHOST_MAX_QUEUED_RUNS_PER_AGENT": "100000",
    }
    env.pop("AGENTHOST_DATABASE_URL", None)
    workdir.mkdir(parents=True)
    c = Cluster(env, workdir, concurrency)
    try:
        yield c
    finally:
        c.stop()


@dataclass
class Bench:
    client: httpx.AsyncClient
    db: asyncpg.Pool
    cluster: Cluster
    concurrency: int
    non_2xx: list[str] = field(default_factory=list)
    not_completed: list[str] = field(default_factory=list)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            resp = await self.client.post(path, json=body)
        except httpx.TransportError:
            self.cluster.check_alive()  # a dead server says so; otherwise the transport error stands
            raise
        if not resp.is_success:
            self.non_2xx.append(f"POST {path} → {resp.status_code}: {resp.text[:200]}")
            resp.raise_for_status()
        return resp.json()

    async def create_agents(self, count: int, prefix: str) -> list[str]:
        async def one(i: int) -> str:
            agent = await self.post("/v1/agents/", {"name": f"{prefix}-{i}", "model": MODEL})
            return str(agent["id"])

        return await self.bounded([partial(one, i) for i in range(count)])

    async def create_async(self, agent_id: str, text: str, **extra: Any) -> str:
        run = await self.post(f"/v1/agents/{agent_id}/messages/async", {"input": text, **extra})
        return str(run["id"])

    async def bounded(self, jobs: list[Any]) -> list[Any]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(job: Any) -> Any:
            async with sem:
                return await job()

        return await asyncio.gather(*(one(j) for j in jobs))

    async def submit(self, agents: list[str], per_agent: int) -> None:
        """``per_agent`` runs on each agent, interleaved over agents, all submitted at once."""
        jobs = [partial(self.create_async, a, f"load {i}") for i in range(per_agent) for a in agents]
        await self.bounded(jobs)

    async def drain(self, agents: list[str], limit_s: float = 600.0) -> None:
        deadline = time.monotonic() + limit_s
        while await self.db.fetchval(ACTIVE_SQL, agents):
            self.cluster.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"runs still active after {limit_s} s")
            await asyncio.sleep(0.01)

    async def span(self, agents: list[str]) -> asyncpg.Record:
        row = await self.db.fetchrow(SPAN_SQL, agents)
        assert row is not None
        if row["ok"] != row["n"]:
            bad = await self.db.fetch(
                "SELECT id, status, stop_reason FROM runs WHERE agent_id = ANY($1) AND status <> 'completed' "
                "LIMIT 10",
                agents,
            )
            self.not_completed += [f"{r['id']}: {r['status']} ({r['stop_reason']})" for r in bad]
        return row

    async def wait_for_workers(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(asyncpg.UndefinedTableError):
                if await self.db.fetchval("SELECT count(*) FROM procrastinate_workers") >= count:
                    return
            self.cluster.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} workers did not register within 60 s")
            await asyncio.sleep(0.05)


async def phase_drain(b: Bench, out: dict[str, Any], workers: int, agents: int, per_agent: int) -> None:
    """Queue ``agents`` x ``per_agent`` runs with no worker running, then start the workers."""
    ids = await b.create_agents(agents, "drain")
    await b.submit(ids, per_agent)
    b.cluster.start_workers(workers)
    await b.wait_for_workers(workers)
    await b.drain(ids)
    row = await b.span(ids)
    out["drain_runs"] = row["n"]
    out["drain_runs_per_s"] = row["n"] / max((row["last_end"] - row["first_start"]).total_seconds(), 1e-9)


async def phase_live(b: Bench, out: dict[str, Any], agents: int, per_agent: int) -> None:
    """The same load over fresh agents, submitted while the workers run."""
    ids = await b.create_agents(agents, "live")
    t0, wall0 = time.perf_counter(), time.time()
    await b.submit(ids, per_agent)
    out["submit_runs_per_s"] = agents * per_agent / (time.perf_counter() - t0)
    await b.drain(ids)
    row = await b.span(ids)
    out["live_runs"] = row["n"]
    out["live_runs_per_s"] = row["n"] / max(row["last_end"].timestamp() - wall0, 1e-9)


async def phase_handoff(b: Bench, out: dict[str, Any], runs: int) -> None:
    """``runs`` runs queued on one agent behind a run that waits for an LLM answer that never comes;
    once all are accepted that run is cancelled, and the gaps between consecutive runs are taken."""
    (agent,) = await b.create_agents(1, "handoff")
    blocker = await b.create_async(agent, "blocks the agent", override_model=f"openai/{HANG_MODEL}")
    deadline = time.monotonic() + 30
    while await b.db.fetchval("SELECT status FROM runs WHERE id = $1", blocker) != "running":
        if time.monotonic() > deadline:
            raise RuntimeError("the blocking run did not start within 30 s")
        await asyncio.sleep(0.005)
    await b.submit([agent], runs)
    await b.post(f"/v1/agents/{agent}/messages/cancel", {"run_ids": [blocker]})
    await b.drain([agent])
    # In execution order: the figure is about hand-over, whichever run came next (the load tests check
    # that it is the next one accepted).
    rows = await b.db.fetch(
        "SELECT id, status, started_at, completed_at FROM runs WHERE agent_id = $1 AND id <> $2 "
        "ORDER BY started_at",
        agent,
        blocker,
    )
    b.not_completed += [f"{r['id']}: {r['status']}" for r in rows if r["status"] != "completed"]
    gaps = [
        (after["started_at"] - before["completed_at"]).total_seconds() * 1000
        for before, after in itertools.pairwise(rows)
    ]
    out["handoff_gaps_ms"] = gaps
    out["handoff_p50_ms"], out["handoff_p95_ms"] = pct(gaps, 50), pct(gaps, 95)
    out["handoff_max_ms"], out["handoff_min_ms"] = max(gaps), min(gaps)


async def phase_idle(b: Bench, out: dict[str, Any], samples: int) -> None:
    """One create_async at a time on an idle system, after a random pause of 0-250 ms (so that samples
    fall anywhere in the workers' polling cycle); create_async sent → the run's ``started_at``."""
    (agent,) = await b.create_agents(1, "idle")
    sent: dict[str, float] = {}
    for i in range(samples):
        await asyncio.sleep(random.uniform(0, 0.25))
        wall = time.time()
        run_id = await b.create_async(agent, f"idle {i}")
        sent[run_id] = wall
        await b.drain([agent])
    await b.span([agent])
    rows = await b.db.fetch("SELECT id, started_at FROM runs WHERE agent_id = $1", agent)
    latencies = [(r["started_at"].timestamp() - sent[r["id"]]) * 1000 for r in rows]
    out["idle_dispatch_p50_ms"], out["idle_dispatch_p95_ms"] = pct(latencies, 50), pct(latencies, 95)


async def run_config(
    config: Config, llm_url: str, pg_url: str, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {"config": config.name}
    with cluster(config, llm_url, pg_url, workdir, args.worker_concurrency) as c:
        c.serve(worker=config.engine == "embedded")
        # Idle connections expire on the client before uvicorn closes them (5 s): no request races a close.
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency, keepalive_expiry=1.0
        )
        async with (
            httpx.AsyncClient(base_url=c.base_url, limits=limits, timeout=120.0) as client,
            asyncpg.create_pool(pg_url, min_size=1, max_size=2) as db,
        ):
            b = Bench(client, db, c, args.concurrency)
            phases = []
            if config.engine == "procrastinate":
                phases.append(
                    ("drain", partial(phase_drain, b, out, config.workers, args.agents, args.per_agent))
                )
            phases += [
                ("live", partial(phase_live, b, out, args.agents, args.per_agent)),
                ("handoff", partial(phase_handoff, b, out, args.handoff_runs)),
                ("idle", partial(phase_idle, b, out, args.idle_samples)),
            ]
            for name, phase in phases:
                t0 = time.perf_counter()
                await phase()
                print(
                    f"  {config.name}: phase {name:<8} done in {time.perf_counter() - t0:6.2f} s",
                    file=sys.stderr,
                )
            out["non_2xx"], out["not_completed"] = b.non_2xx, b.not_completed
    return out


def render(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = ("figure", *(r["config"] for r in results), "unit", "target")
    lines = [head]
    for key, label, unit, target in ROWS:
        cells = ["-" if r.get(key) is None else f"{r[key]:,.1f}" for r in results]
        lines.append((label, *cells, unit, target))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    numeric = range(1, 1 + len(results))
    fmt = "  ".join(f"{{:{'>' if i in numeric else '<'}{w}}}" for i, w in enumerate(widths))
    table = [fmt.format(*row).rstrip() for row in lines]
    table.insert(1, "  ".join("-" * w for w in widths))
    notes = [
        f"load: {args.agents} agents x {args.per_agent} one-step runs (drain, live); hand-off: "
        f"{args.handoff_runs} runs on one agent; idle: {args.idle_samples} samples; worker concurrency "
        f"{args.worker_concurrency}; client concurrency {args.concurrency}; {os.cpu_count()} CPUs",
    ]
    for r in results:
        notes.append(
            f"{r['config']}: non-completed runs {len(r['not_completed'])}, non-2xx {len(r['non_2xx'])}"
        )
        notes += [f"  {e}" for e in [*r["not_completed"], *r["non_2xx"]][:10]]
    return "\n".join([*table, "", *notes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", metavar="ADMIN_URL", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--configs",
        default="procrastinate-1,procrastinate-2,embedded",
        help="comma-separated: procrastinate-<workers>, embedded",
    )
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--per-agent", type=int, default=10)
    parser.add_argument("--handoff-runs", type=int, default=200)
    parser.add_argument("--idle-samples", type=int, default=50)
    parser.add_argument("--worker-concurrency", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=50, help="client concurrency for bulk phases")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (path printed)")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    configs = [Config.parse(c) for c in args.configs.split(",")]
    signal.signal(signal.SIGTERM, _raise_interrupt)
    results: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(tempfile.mkdtemp(prefix="agenthost-scaleout-"))
            if args.keep_logs:
                print(f"logs in {tmp}", file=sys.stderr)
            else:
                stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            llm_url = stack.enter_context(fake_llm())
            for config in configs:
                with pg_database(args.pg) as pg_url:
                    results.append(asyncio.run(run_config(config, llm_url, pg_url, tmp / config.name, args)))
    except KeyboardInterrupt:
        print("interrupted; processes and temp dirs cleaned up", file=sys.stderr)
        return 130
    except httpx.HTTPStatusError as exc:
        print(f"non-2xx response, bench aborted: {exc}\n{exc.response.text}", file=sys.stderr)
        return 1
    print(render(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 1 if any(r["non_2xx"] or r["not_completed"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
