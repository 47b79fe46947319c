"""Core benchmark: a real ``agenthost serve`` process against the fake LLM, measured over HTTP.

Prints start-up time, create_async latency, end-to-end one-step run latency, throughput and memory,
next to the targets and the retired Letta server's figures. It measures; it asserts no timings.

    cd /work/main && .venv/bin/python bench/bench_core.py [--pg postgresql://postgres@127.0.0.1:5432/test]
        [--json out.json]

The client is raw ``httpx.AsyncClient`` (one keep-alive pool), so the figures are the server's, not an SDK's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
MODEL = "openai/gpt-4o-mini"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
HANG_MODEL = "bench-hang"  # the fake never answers it: runs of its agent stay queued behind the first
CLIENT = f"httpx {httpx.__version__} AsyncClient (raw HTTP, keep-alive pool)"

# (key, label, unit, target, Letta retired server)
ROWS: list[tuple[str, str, str, str, str]] = [
    ("start_to_healthy_ms", "start → healthy", "ms", "", "~22000"),
    ("create_agent_p50_ms", "create agent p50", "ms", "", ""),
    ("create_async_p50_ms", "create_async p50", "ms", "≤ 2", "819"),
    ("create_async_p99_ms", "create_async p99", "ms", "", ""),
    ("create_async_quiet_p50_ms", "create_async p50, no run executing", "ms", "≤ 2", ""),
    ("create_async_quiet_p99_ms", "create_async p99, no run executing", "ms", "", ""),
    ("e2e_p50_ms", "e2e one-step run p50", "ms", "≤ 15", "~1000"),
    ("e2e_p99_ms", "e2e one-step run p99", "ms", "", ""),
    ("throughput_runs_per_s", "throughput (500 runs / 50 agents)", "runs/s", "≥ 500", "1.3"),
    ("submit_runs_per_s", "  of which submit rate", "runs/s", "", ""),
    ("rss_idle_mib", "RSS idle after start", "MiB", "", ""),
    ("rss_1000_agents_mib", "RSS after 1,000 agents", "MiB", "", ""),
]


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` (psutil when installed, else /proc/<pid>/status)."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"cannot read the RSS of pid {pid}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database (its URL), dropped afterwards."""
    name = f"agenthost_bench_{uuid.uuid4().hex[:10]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def fake_llm() -> Iterator[str]:
    """The fake LLM as its own process; yields its base URL."""
    cmd = [sys.executable, "-m", "tests.fakes.fake_llm", "--port", "0", "--hang-model", HANG_MODEL]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()  # EOF (b"") if it died
        if not line.startswith("FAKE_LLM_URL="):
            raise RuntimeError(f"fake LLM did not start (exit {proc.poll()}, said {line!r})")
        yield line.partition("=")[2]
    finally:
        stop_process(proc)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    start_ms: float


@contextlib.contextmanager
def agenthost(llm_url: str, data_dir: Path, pg_url: str | None) -> Iterator[Server]:
    """``agenthost serve`` as a subprocess; yields once GET /v1/health/ answers 200 (timed from spawn)."""
    port = free_port()
    env = {
        **os.environ,
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "x",
        "AGENTHOST_LOG_LEVEL": "warning",
    }
    for var in ("LETTA_PG_URI", "AGENTHOST_DATABASE_URL"):
        env.pop(var, None)
    if pg_url is not None:
        env["LETTA_PG_URI"] = pg_url
    cmd = [sys.executable, "-m", "agenthost", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    log_path = data_dir.parent / "server.log"
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=1.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"agenthost exited with {proc.returncode}:\n{log_path.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{base_url}/v1/health/").status_code == 200:
                        break
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("agenthost did not become healthy within 60 s")
                time.sleep(0.002)
        yield Server(proc, base_url, log_path, (time.perf_counter() - t0) * 1000)
    finally:
        stop_process(proc)


@dataclass
class Bench:
    client: httpx.AsyncClient
    poll_s: float
    concurrency: int
    non_2xx: list[str] = field(default_factory=list)
    not_completed: dict[str, str] = field(default_factory=dict)  # run id → final status
    agents: list[str] = field(default_factory=list)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(await self.client.post(path, json=body))

    async def get(self, path: str, **params: Any) -> Any:
        return self._json(await self.client.get(path, params=params))

    def _json(self, resp: httpx.Response) -> Any:
        if not resp.is_success:
            request = resp.request
            self.non_2xx.append(f"{request.method} {request.url.path} → {resp.status_code}: {resp.text}")
            resp.raise_for_status()
        return resp.json()

    async def create_agent(self) -> str:
        agent = await self.post("/v1/agents/", {"name": f"bench-{uuid.uuid4().hex[:8]}", "model": MODEL})
        self.agents.append(agent["id"])
        return str(agent["id"])

    async def create_async(self, agent_id: str, text: str) -> dict[str, Any]:
        run: dict[str, Any] = await self.post(f"/v1/agents/{agent_id}/messages/async", {"input": text})
        return run

    async def bounded(self, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(job: Callable[[], Awaitable[Any]]) -> Any:
            async with sem:
                return await job()

        return await asyncio.gather(*(one(j) for j in jobs))

    async def drain(self, limit_s: float = 300.0) -> None:
        """Wait until the server has no active run (none of the earlier phases may leak into the next)."""
        deadline = time.monotonic() + limit_s
        while await self.get("/v1/runs/", active="true", limit=1):
            if time.monotonic() > deadline:
                raise RuntimeError(f"runs still active after {limit_s} s")
            await asyncio.sleep(0.005)


async def phase_create_async(b: Bench, out: dict[str, Any]) -> None:
    """20 agents, then 200 create_async calls round-robin over them, one at a time."""
    times: list[float] = []
    for _ in range(20):
        t0 = time.perf_counter()
        await b.create_agent()
        times.append((time.perf_counter() - t0) * 1000)
    out["create_agent_p50_ms"] = pct(times, 50)
    latencies: list[float] = []
    for i in range(200):
        t0 = time.perf_counter()
        await b.create_async(b.agents[i % 20], f"hello {i}")
        latencies.append((time.perf_counter() - t0) * 1000)
    out["create_async_p50_ms"], out["create_async_p99_ms"] = pct(latencies, 50), pct(latencies, 99)
    await b.drain()


async def phase_create_async_quiet(b: Bench, out: dict[str, Any], calls: int = 200) -> None:
    """create_async alone: 200 calls on one agent whose first run never gets its LLM answer, so the
    rest stay queued and nothing executes while they are accepted. Then all are cancelled."""
    agent = await b.post("/v1/agents/", {"name": "bench-quiet", "model": f"openai/{HANG_MODEL}"})
    await b.create_async(agent["id"], "blocks the agent")
    latencies: list[float] = []
    for i in range(calls):
        t0 = time.perf_counter()
        await b.create_async(agent["id"], f"queued {i}")
        latencies.append((time.perf_counter() - t0) * 1000)
    out["create_async_quiet_p50_ms"] = pct(latencies, 50)
    out["create_async_quiet_p99_ms"] = pct(latencies, 99)
    await b.post(f"/v1/agents/{agent['id']}/messages/cancel", {})
    await b.drain()


async def phase_e2e(b: Bench, out: dict[str, Any], runs: int = 100, agents: int = 10) -> None:
    """One-step runs, one at a time: create_async → first GET that shows ``completed``."""
    latencies: list[float] = []
    polls = 0
    for i in range(runs):
        t0 = time.perf_counter()
        run = await b.create_async(b.agents[i % agents], f"e2e {i}")
        while run["status"] not in TERMINAL and time.perf_counter() - t0 < 60:
            await asyncio.sleep(b.poll_s)
            run = await b.get(f"/v1/runs/{run['id']}")
            polls += 1
        latencies.append((time.perf_counter() - t0) * 1000)
        if run["status"] != "completed":
            b.not_completed[run["id"]] = f"{run['status']} (e2e): {run.get('metadata')}"
    out["e2e_p50_ms"], out["e2e_p99_ms"] = pct(latencies, 50), pct(latencies, 99)
    out["e2e_polls_per_run"] = polls / runs


async def phase_throughput(b: Bench, out: dict[str, Any], runs: int = 500, agents: int = 50) -> None:
    """``runs`` create_async calls over fresh agents submitted at once; first submit → last completion."""
    ids = await b.bounded([b.create_agent for _ in range(agents)])
    jobs = [partial(b.create_async, ids[i % agents], f"load {i}") for i in range(runs)]
    t_start, wall_start = time.perf_counter(), time.time()
    results = await b.bounded(jobs)
    t_submitted = time.perf_counter()
    await b.drain()
    t_observed = time.perf_counter()
    wanted = {r["id"] for r in results}
    rows = await b.get("/v1/runs/", agent_ids=ids, limit=1000)
    runs_by_id = {r["id"]: r for r in rows if r["id"] in wanted}
    b.not_completed.update({i: r["status"] for i, r in runs_by_id.items() if r["status"] != "completed"})
    b.not_completed.update({i: "missing" for i in wanted - runs_by_id.keys()})
    ends = [r["completed_at"] for r in runs_by_id.values() if r.get("completed_at")]
    # Both clocks are this host's wall clock; the server stamps completed_at when the run ends.
    last = max(_epoch(e) for e in ends) if ends else wall_start + (t_observed - t_start)
    out["throughput_runs_per_s"] = runs / max(last - wall_start, 1e-9)
    out["throughput_observed_runs_per_s"] = runs / (t_observed - t_start)
    out["submit_runs_per_s"] = runs / (t_submitted - t_start)


def _epoch(stamp: str) -> float:
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


async def phase_memory(b: Bench, out: dict[str, Any], pid: int, total: int = 1000) -> None:
    """Add agents until the server holds ``total``, then read the server's RSS."""
    missing = total - len(b.agents)
    await b.bounded([b.create_agent for _ in range(max(missing, 0))])
    listed = await b.get("/v1/agents/", limit=1000)
    out["agents_on_server"] = len(listed)
    out["rss_1000_agents_mib"] = rss_mib(pid)


async def run_bench(server: Server, poll_s: float, concurrency: int) -> dict[str, Any]:
    out: dict[str, Any] = {"client": CLIENT, "start_to_healthy_ms": server.start_ms}
    out["rss_idle_mib"] = rss_mib(server.proc.pid)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60.0) as client:
        b = Bench(client, poll_s, concurrency)
        phases = [
            ("create_async", partial(phase_create_async, b, out)),
            ("quiet", partial(phase_create_async_quiet, b, out)),
            ("e2e", partial(phase_e2e, b, out)),
            ("throughput", partial(phase_throughput, b, out)),
            ("memory", partial(phase_memory, b, out, server.proc.pid)),
        ]
        for name, phase in phases:
            t0 = time.perf_counter()
            await phase()
            print(f"  phase {name:<12} done in {time.perf_counter() - t0:6.2f} s", file=sys.stderr)
        out["non_2xx"], out["non_completed_runs"] = b.non_2xx, b.not_completed
    return out


def render(out: dict[str, Any], backend: str, poll_ms: float) -> str:
    head = ("figure", "agenthost", "unit", "target", "Letta (retired server)")
    lines = [head]
    for key, label, unit, target, letta in ROWS:
        value = out.get(key)
        lines.append((label, "-" if value is None else f"{value:,.1f}", unit, target, letta))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'>' if i == 1 else '<'}{w}}}" for i, w in enumerate(widths))
    table = [fmt.format(*row).rstrip() for row in lines]
    table.insert(1, "  ".join("-" * w for w in widths))
    notes = [
        f"backend: {backend}; client: {out['client']}; fake LLM answers at once",
        f"e2e polls GET /v1/runs/{{id}} every {poll_ms:g} ms "
        f"({out.get('e2e_polls_per_run', 0):.1f} polls/run): "
        "the figure is bounded below by that granularity plus one GET",
        "throughput: first submit → last server-side completed_at "
        f"(client-observed {out.get('throughput_observed_runs_per_s', 0):,.1f} runs/s incl. polling)",
        f"agents on server at the RSS reading: {out.get('agents_on_server')}",
        f"non-completed runs: {len(out.get('non_completed_runs', {}))}; non-2xx responses: "
        f"{len(out.get('non_2xx', []))}",
    ]
    notes += [f"  {k}: {v}" for k, v in list(out.get("non_completed_runs", {}).items())[:10]]
    notes += [f"  {e}" for e in out.get("non_2xx", [])[:10]]
    return "\n".join([*table, "", *notes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", metavar="ADMIN_URL", help="use PostgreSQL (fresh database via this URL)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="e2e polling interval (default 1 ms)")
    parser.add_argument("--concurrency", type=int, default=50, help="client concurrency for bulk phases")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    backend = "postgres" if args.pg else "sqlite"
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(tempfile.mkdtemp(prefix="agenthost-bench-"))
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            pg_url = stack.enter_context(pg_database(args.pg)) if args.pg else None
            llm_url = stack.enter_context(fake_llm())
            server = stack.enter_context(agenthost(llm_url, tmp / "data", pg_url))
            print(f"agenthost healthy in {server.start_ms:.0f} ms ({backend}); phases:", file=sys.stderr)
            out = asyncio.run(run_bench(server, args.poll_ms / 1000, args.concurrency))
    except KeyboardInterrupt:
        print("interrupted; processes and temp dirs cleaned up", file=sys.stderr)
        return 130
    except httpx.HTTPStatusError as exc:
        print(f"non-2xx response, bench aborted: {exc}\n{exc.response.text}", file=sys.stderr)
        return 1
    out["backend"] = backend
    print(render(out, backend, args.poll_ms))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 1 if out["non_2xx"] or out["non_completed_runs"] else 0


if __name__ == "__main__":
    sys.exit(main())
