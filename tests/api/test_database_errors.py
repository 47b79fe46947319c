"""A database that fails under a request is answered with a 503 that says so, never a bare 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.conftest import _pg
from tests.support import ThreadServer, api_error

postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@postgres_only
def test_a_database_that_refuses_connections_gives_503_with_retry_after(
    fresh_server: Callable[..., ThreadServer], fresh_pg_database: Callable[[], str]
) -> None:
    url = fresh_pg_database()
    name = url.rsplit("/", 1)[1]
    srv = fresh_server(database_url=url)
    client = srv.client()
    agent = client.agents.create(name="db-away", model="openai/gpt-4o-mini")
    try:
        # Every pooled connection is dropped and no new one is accepted.
        assert _pg(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false') is None
        assert _pg(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'") is None
        body = api_error(lambda: client.agents.retrieve(agent.id), 503)
        assert body["code"] == "unavailable"
        assert "database is unavailable" in body["detail"]
    finally:
        assert _pg(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true') is None
    # Once the database is back, so is the server.
    assert client.agents.retrieve(agent.id).id == agent.id
