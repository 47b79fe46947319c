"""The run-engine contract: one suite that both engines pass.

``engine`` is each engine as deployed, sharing the test session's one fake LLM:

- ``embedded``: agenthost with default settings in a thread of the test process (``ThreadServer``), on
  a PostgreSQL database of the suite's own;
- ``procrastinate``: an ``agenthost serve --no-worker`` subprocess (API only) and two ``agenthost worker``
  subprocesses (concurrency 8), on another fresh PostgreSQL database, with fast failure detection
  (``FAST_ENV``).

Both are started once for the package; tests isolate themselves by their own agents and model names.
``crash_engine`` gives the crash tests a process to kill: for the distributed engine the worker that
executes the test's runs (the other worker is paused with SIGSTOP while they are submitted, so the
executor is known), for the embedded engine an ``agenthost serve`` subprocess on a database of its own,
started again after each crash. ``only_procrastinate`` narrows a test to the distributed engine.

Order and overlap are read from what the engines record (message ``seq_id``, the runs' ``started_at``,
``completed_at`` and ``attempt`` columns, read straight from the database), never from wall-clock sleeps.
Everything needs PostgreSQL (the distributed engine has no SQLite mode); without one the suite is skipped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
from letta_client import Letta

from agenthost.settings import Settings
from tests.conftest import PG_ADMIN_URL, _pg
from tests.fakes.fake_llm import FakeLLM
from tests.support import ProcessServer, ProcessWorker, ThreadServer, wait_until

ENGINES = ("embedded", "procrastinate")
WORKERS = 2
WORKER_CONCURRENCY = 8
# Fast failure detection for the subprocesses: a worker silent for 3 s is dead, reaped within 0.5 s.
# A short shutdown grace keeps the SIGTERM tests quick.
SHUTDOWN_GRACE_S = 1.0
FAST_ENV = {
    "AGENTHOST_LOG_LEVEL": "warning",
    "AGENTHOST_LLM_RETRY_BASE_DELAY_S": "0.01",
    "AGENTHOST_DEFAULT_EMBEDDING": "openai/fake-embedding",
    "AGENTHOST_HEARTBEAT_INTERVAL_S": "0.5",
    "AGENTHOST_STALLED_AFTER_S": "3",
    "AGENTHOST_REAPER_INTERVAL_S": "0.5",
    "AGENTHOST_SHUTDOWN_GRACE_S": str(SHUTDOWN_GRACE_S),
    "AGENTHOST_SANDBOX_POOL_SIZE": "0",
}

only_procrastinate = pytest.mark.parametrize("engine", ["procrastinate"], indirect=True)


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement against ``url`` (the tests read what the engines recorded)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params or None)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description is not None else []


@dataclass(frozen=True)
class RunRecord:
    """What the database holds for a run beyond the wire (started_at and attempt are not on it)."""

    id: str
    status: str
    stop_reason: str | None
    started_at: datetime | None
    completed_at: datetime | None
    attempt: int
    error: str | None


@dataclass
class Engine:
    """One engine under test: its HTTP API and its database."""

    kind: str
    base_url: str
    database_url: str

    def client(self) -> Letta:
        return Letta(base_url=self.base_url, api_key="test", max_retries=0, timeout=30)

    def runs(self, run_ids: list[str]) -> list[RunRecord]:
        """The runs' rows, in the order of ``run_ids``."""
        rows = query(
            self.database_url,
            "SELECT id, status, stop_reason, started_at, completed_at, attempt, metadata->>'error' "
            "FROM runs WHERE id = ANY(%s)",
            run_ids,
        )
        by_id = {row[0]: RunRecord(*row) for row in rows}
        return [by_id[r] for r in run_ids]

    def jobs_left(self, run_ids: list[str]) -> int:
        """procrastinate jobs still stored for these runs (0 for the embedded engine, which has none)."""
        if self.kind != "procrastinate":
            return 0
        sql = "SELECT count(*) FROM procrastinate_jobs WHERE args->>'run_id' = ANY(%s)"
        return int(query(self.database_url, sql, run_ids)[0][0])

    def effects_started(self, run_id: str) -> bool:
        rows = query(self.database_url, "SELECT effects_started FROM runs WHERE id = %s", run_id)
        return bool(rows and rows[0][0])


class CrashTarget(Protocol):
    """An engine whose executing process a test can kill (see ``crash_engine``)."""

    engine: Engine

    def isolate(self) -> None:
        """Make the runs submitted next execute in the one process ``kill``/``terminate`` hit."""

    def kill(self) -> None:
        """SIGKILL the executing process."""

    def terminate(self) -> int:
        """SIGTERM the executing process; its exit code once it has exited."""

    def recover(self) -> None:
        """What follows a crash: the embedded server restarts, the other worker resumes (and reaps)."""


def _fresh_database() -> str:
    name = f"agenthost_contract_{uuid.uuid4().hex[:10]}"
    error = _pg(f'CREATE DATABASE "{name}"')
    if error is not None:
        raise RuntimeError(f"cannot create database {name}: {error}")
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _drop(url: str) -> None:
    _pg(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture(scope="package")
def contract_database(pg_database: str | None) -> Iterator[Callable[[], str]]:
    """Make PostgreSQL databases that live as long as the package (dropped after it)."""
    made: list[str] = []

    def make() -> str:
        if pg_database is None:
            pytest.skip(f"the engine contract needs PostgreSQL; none reachable at {PG_ADMIN_URL}")
        made.append(_fresh_database())
        return made[-1]

    yield make
    for url in made:
        _drop(url)


def subprocess_env(fake_llm: FakeLLM, database_url: str, engine: str) -> dict[str, str]:
    return {
        **FAST_ENV,
        "AGENTHOST_ENGINE": engine,
        "AGENTHOST_DATABASE_URL": database_url,
        "OPENAI_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": "x",
    }


@pytest.fixture(scope="package")
def embedded_engine(
    contract_database: Callable[[], str], fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    url = contract_database()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("embedded"),
        database_url=url,
        openai_base_url=fake_llm.base_url,
        openai_api_key="x",  # type: ignore[arg-type]
        llm_retry_base_delay_s=0.01,
        default_embedding="openai/fake-embedding",
        log_level="warning",
    )
    server = ThreadServer(settings).start()
    yield Engine("embedded", server.base_url, url)
    server.stop()


@dataclass
class Cluster:
    """The distributed engine: one API process and ``WORKERS`` worker processes on one database."""

    api: ProcessServer
    workers: list[ProcessWorker]
    database_url: str
    paused: list[ProcessWorker] = field(default_factory=list)

    def live_workers(self) -> int:
        """Workers whose heartbeat is fresh (they beat every 0.5 s)."""
        fresh = "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - interval '1.5 s'"
        rows = query(self.database_url, fresh)
        return int(rows[0][0])

    def ensure_workers(self) -> None:
        """Every worker running and registered (a crash test may have killed or stopped one)."""
        self.resume()
        for worker in self.workers:
            if not worker.alive():
                worker.start()
        wait_until(
            lambda: self.live_workers() >= len(self.workers) or self._dead_worker(),
            timeout=60,
            what="the workers to register",
        )

    def _dead_worker(self) -> bool:
        for worker in self.workers:
            if not worker.alive():
                raise RuntimeError(
                    f"a worker exited with {worker.proc and worker.proc.returncode}:\n{worker.log()}"
                )
        return False

    def pause_all_but(self, executor: ProcessWorker | None) -> None:
        for worker in self.workers:
            if worker is not executor:
                worker.signal(signal.SIGSTOP)
                self.paused.append(worker)

    def pause_all(self) -> None:
        self.pause_all_but(None)

    def resume(self) -> None:
        for worker in self.paused:
            if worker.alive():
                worker.signal(signal.SIGCONT)
        self.paused.clear()

    def stop(self) -> None:
        self.resume()
        for worker in self.workers:
            worker.stop()
        self.api.stop()


@pytest.fixture(scope="package")
def cluster(
    contract_database: Callable[[], str], fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    url = contract_database()
    env = subprocess_env(fake_llm, url, "procrastinate")
    logs = tmp_path_factory.mktemp("workers")
    api = ProcessServer(env, tmp_path_factory.mktemp("api"), args=("--no-worker",))
    workers = [
        ProcessWorker(env, logs / f"worker-{i}.log", concurrency=WORKER_CONCURRENCY) for i in range(WORKERS)
    ]
    started = Cluster(api, workers, url)
    try:
        # All at once, as a deployment starts them: migrations and schemas are serialised by locks.
        for worker in workers:
            worker.start()
        api.start()
        started.ensure_workers()
        yield started
    finally:
        started.stop()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each engine in turn (``only_procrastinate`` narrows a test to the distributed one)."""
    if request.param == "embedded":
        embedded: Engine = request.getfixturevalue("embedded_engine")
        return embedded
    cluster: Cluster = request.getfixturevalue("cluster")
    cluster.ensure_workers()
    return Engine("procrastinate", cluster.api.base_url, cluster.database_url)


@dataclass
class DistributedTarget:
    cluster: Cluster
    engine: Engine
    executor: ProcessWorker | None = None

    def isolate(self) -> None:
        self.executor = self.cluster.workers[0]
        self.cluster.pause_all_but(self.executor)

    def kill(self) -> None:
        assert self.executor is not None
        self.executor.kill()

    def terminate(self) -> int:
        assert self.executor is not None and self.executor.proc is not None
        self.executor.signal(signal.SIGTERM)
        try:
            return self.executor.proc.wait(timeout=SHUTDOWN_GRACE_S + 15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit after SIGTERM:\n{self.executor.log()}")

    def recover(self) -> None:
        self.cluster.resume()


@dataclass
class EmbeddedTarget:
    """``agenthost serve`` with the embedded engine, as a subprocess (a crash kills it, recovery
    starts it again on the same port, data dir and database)."""

    env: dict[str, str]
    data_dir: Path
    engine: Engine
    servers: list[ProcessServer] = field(default_factory=list)

    @property
    def server(self) -> ProcessServer:
        return self.servers[-1]

    def start(self) -> None:
        server = ProcessServer(self.env, self.data_dir)
        if self.servers:
            server.port = self.servers[-1].port
        self.servers.append(server)
        server.start()
        self.engine.base_url = server.base_url

    def ensure_running(self) -> None:
        if not self.servers or self.server.proc is None or self.server.proc.poll() is not None:
            self.start()

    def isolate(self) -> None:
        """One process executes everything already."""

    def kill(self) -> None:
        self.server.kill()

    def terminate(self) -> int:
        proc = self.server.proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=SHUTDOWN_GRACE_S + 30)
        except subprocess.TimeoutExpired:
            pytest.fail("agenthost serve did not exit after SIGTERM")
        return 0 if code == -signal.SIGTERM else code  # uvicorn re-raises the signal once it is done

    def recover(self) -> None:
        self.start()  # start-up recovery hands back what was running, queues what was created

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="package")
def embedded_process(
    contract_database: Callable[[], str], fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedTarget]:
    """The embedded engine for crash tests, on a database of its own: its start-up recovery fails every
    run left `running` in its database, which must not touch other servers' runs."""
    url = contract_database()
    env = subprocess_env(fake_llm, url, "embedded")
    target = EmbeddedTarget(env, tmp_path_factory.mktemp("embedded-process"), Engine("embedded", "", url))
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(params=ENGINES)
def crash_engine(request: pytest.FixtureRequest) -> Iterator[CrashTarget]:
    """Each engine with a process to kill (see the module docstring)."""
    if request.param == "embedded":
        embedded: EmbeddedTarget = request.getfixturevalue("embedded_process")
        embedded.ensure_running()
        yield embedded
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    cluster.ensure_workers()
    try:
        yield DistributedTarget(cluster, Engine("procrastinate", cluster.api.base_url, cluster.database_url))
    finally:
        cluster.resume()


@pytest.fixture
def release_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory custom tools watch; removing its ``hold`` file lets a waiting tool return (and an
    orphaned one, whose worker was killed, exit)."""
    path = tmp_path / "tool"
    path.mkdir()
    (path / "hold").touch()
    yield path
    with contextlib.suppress(FileNotFoundError):
        os.remove(path / "hold")


@contextlib.contextmanager
def failing_starts(engine: Engine, agent_id: str, times: int | None) -> Iterator[None]:
    """Make the database refuse to start the agent's runs (``times`` times; None: every time), as a
    database failing under an executor would: the claim ``created → running`` raises."""
    tag = uuid.uuid4().hex[:10]
    limit = "NULL" if times is None else str(times)
    statements = [
        f"CREATE SEQUENCE fault_{tag}",
        f"""CREATE FUNCTION fault_{tag}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.agent_id = '{agent_id}' AND NEW.status = 'running' AND OLD.status = 'created'
               AND ({limit} IS NULL OR nextval('fault_{tag}') <= {limit}) THEN
                RAISE EXCEPTION 'injected fault: the database failed starting run %', NEW.id;
            END IF;
            RETURN NEW;
        END $$""",
        f"CREATE TRIGGER fault_{tag} BEFORE UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION fault_{tag}()",
    ]
    for sql in statements:
        query(engine.database_url, sql)
    try:
        yield
    finally:
        query(engine.database_url, f"DROP TRIGGER IF EXISTS fault_{tag} ON runs")
        query(engine.database_url, f"DROP FUNCTION IF EXISTS fault_{tag}()")
        query(engine.database_url, f"DROP SEQUENCE IF EXISTS fault_{tag}")
