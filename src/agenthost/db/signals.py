"""Wake-ups for whoever follows a run: "this run committed something", within and across processes.

On PostgreSQL the writer adds ``pg_notify('agenthost_runs', <run id>)`` to the transaction that commits
a run's step or end (``notify_in``): PostgreSQL delivers it on commit, to every process listening,
whichever host executes the run. Each process keeps one listening connection and wakes the streams
waiting on that run. On SQLite (one process) the writer wakes them itself after its commit
(``RunSignals.wake``). A wake-up only says "look again": the database stays the source of truth, and
a follower that misses one still finds the events at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

log = logging.getLogger(__name__)

CHANNEL = "agenthost_runs"
_RETRY_LISTEN_S = 5.0
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :rid)")


async def notify_in(conn: AsyncConnection | AsyncSession, run_id: str) -> None:
    """On PostgreSQL, have the transaction wake the run's followers when it commits."""
    dialect = conn.get_bind().dialect if isinstance(conn, AsyncSession) else conn.dialect
    if dialect.name == "postgresql":
        await conn.execute(_NOTIFY, {"rid": run_id})


class RunSignals:
    """This process's followers of runs, and (PostgreSQL) its one listening connection, opened when the
    first stream starts: a worker that serves no streams never opens it."""

    def __init__(self, pg_url: str | None) -> None:
        self._pg_url = pg_url
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._next_try = 0.0

    async def listen(self) -> None:
        """Make sure notifications reach this process (a no-op on SQLite, or once listening)."""
        if self._pg_url is None or (self._conn is not None and not self._conn.is_closed()):
            return
        async with self._lock:
            now = time.monotonic()
            if (self._conn is not None and not self._conn.is_closed()) or now < self._next_try:
                return
            try:
                conn = await asyncpg.connect(self._pg_url)
                await conn.add_listener(CHANNEL, self._on_notify)
                self._conn = conn
            except (OSError, asyncpg.PostgresError) as exc:
                # Streams still work, at their poll interval; try again a little later.
                self._next_try = now + _RETRY_LISTEN_S
                log.warning("cannot listen for run progress (%s); streams poll meanwhile", exc)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    def wake(self, run_id: str) -> None:
        for event in self._waiters.get(run_id, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the run commits something, while the block lasts."""
        event = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[run_id]

    def _on_notify(self, _conn: object, _pid: int, _channel: str, run_id: str) -> None:
        self.wake(run_id)
