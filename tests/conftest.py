"""Fixtures: one fake LLM, and agenthost over real HTTP on SQLite and on the real PostgreSQL.

Every API test runs twice, once per backend (`backend` parameter). PostgreSQL tests use a fresh
database made for this test session and dropped after it; where no PostgreSQL answers on
127.0.0.1:5432 they are skipped with that reason (shown in the summary, never silently).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from agenthost.settings import Settings
from tests.fakes.fake_llm import FakeLLM
from tests.support import ThreadServer

PG_ADMIN_URL = os.environ.get("AGENTHOST_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_REAL_LLM_HOSTS = ("api.openai.com", "api.anthropic.com")


@pytest.fixture(autouse=True)
def _no_real_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach a real LLM API by accident: provider credentials from the environment are dropped."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_API_KEY", "LETTA_PG_URI"):
        monkeypatch.delenv(var, raising=False)


def _pg(sql: str, url: str = PG_ADMIN_URL) -> str | None:
    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test session (its URL), or None when PostgreSQL is absent."""
    name = f"agenthost_test_{uuid.uuid4().hex[:10]}"
    error = _pg(f'CREATE DATABASE "{name}"')
    if error is not None:
        pytest.pg_unavailable = error  # type: ignore[attr-defined]
        yield None
        return
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_pg_database(pg_database: str | None) -> Iterator[Callable[[], str]]:
    """Make PostgreSQL databases of the test's own (dropped at teardown).

    A server with the embedded engine owns its database (start-up recovery fails every run left
    `running` in it), so a test's extra servers must not share the session database.
    """
    made: list[str] = []

    def make() -> str:
        if pg_database is None:
            pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
        name = f"agenthost_test_{uuid.uuid4().hex[:10]}"
        error = _pg(f'CREATE DATABASE "{name}"')
        if error is not None:
            raise RuntimeError(f"cannot create database {name}: {error}")
        made.append(name)
        return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    yield make
    for name in made:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, pg_database: str | None) -> str:
    if request.param == "postgres" and pg_database is None:
        reason = getattr(pytest, "pg_unavailable", "unknown error")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({reason})")
    return str(request.param)


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(
    backend: str, pg_database: str | None, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> SettingsFactory:
    """Settings for a server on this test's backend, talking to the fake LLM; keywords override."""

    def factory(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": tmp_path_factory.mktemp("data"),
            "openai_base_url": fake_llm.base_url,
            "openai_api_key": "test-key",
            "llm_retry_base_delay_s": 0.01,
            "callback_retry_base_delay_s": 0.01,
            "log_level": "warning",
            # Archival memory embeds through the fake's /v1/embeddings (the local model is for its own tests).
            "default_embedding": "openai/fake-embedding",
        }
        if backend == "postgres":
            values["database_url"] = pg_database
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return factory


_shared: dict[str, ThreadServer] = {}


@pytest.fixture
def server(backend: str, make_settings: SettingsFactory) -> ThreadServer:
    """A server shared by every test of this backend (tests isolate by their own agents and models)."""
    if backend not in _shared:
        _shared[backend] = ThreadServer(make_settings()).start()
    return _shared[backend]


@pytest.fixture
def fresh_server(
    backend: str, make_settings: SettingsFactory, fresh_pg_database: Callable[[], str]
) -> Iterator[Callable[..., ThreadServer]]:
    """Start servers of the test's own (custom settings, own database); stopped at teardown."""
    started: list[ThreadServer] = []

    def start(**overrides: object) -> ThreadServer:
        if backend == "postgres" and "database_url" not in overrides:
            overrides["database_url"] = fresh_pg_database()
        srv = ThreadServer(make_settings(**overrides)).start()
        started.append(srv)
        return srv

    yield start
    for srv in reversed(started):
        srv.stop()


def pytest_sessionfinish(session: pytest.Session) -> None:
    for srv in _shared.values():
        srv.stop()
    _shared.clear()


@pytest.fixture
def model() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def handle(model: str) -> str:
    return f"openai/{model}"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
