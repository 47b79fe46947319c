"""The async engine, the session factory, start-up migrations and the single-server lock for SQLite.

Also what the layers above may name of SQLAlchemy without importing it (only ``db/`` does): the session
type, and the errors a caller has a reason to catch.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from asyncpg.exceptions import ConnectionDoesNotExistError
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from agenthost.db import sqlite_driver  # noqa: F401 - registers sqlite+agenthost_aiosqlite
from agenthost.errors import AgentHostError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same for every agenthost process sharing a database.
_PG_MIGRATION_LOCK = 0x61676E74
_PG_ENGINE_LOCK = 0x61676E75


# The unit of work a service holds (from ``Database.session()``) and hands to the query functions.
Session = AsyncSession
# Any failure of the database or of SQLAlchemy itself.
DatabaseError = SQLAlchemyError
# A statement refused by a constraint (unique, foreign key): a conflict with data already stored.
ConstraintViolation = IntegrityError
# The errors that say the database failed under a request (mapped to an answer by ``api/errors.py``).
DATABASE_ERRORS: tuple[type[Exception], ...] = (PoolTimeout, DBAPIError)


class DatabaseLocked(AgentHostError):
    code = "database_locked"


class Database:
    """Owns the engine and hands out one session (one transaction) per use case."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # Every session ends in an explicit commit or rollback, so the pool's reset-on-return rollback
        # would be one more round trip per transaction for nothing.
        kwargs: dict[str, Any] = {"pool_reset_on_return": None}
        if self.is_sqlite:
            # One writer connection: SQLite has a single writer, and queueing on our pool is cheaper and
            # fairer than retrying on SQLITE_BUSY. Transactions are short (never held across an LLM call).
            kwargs.update(pool_size=1, max_overflow=0, pool_timeout=60)
        else:
            # At most twice pool_size connections per process: with procrastinate's pool (half as many) an
            # API server and two workers at the default (10) fit PostgreSQL's default max_connections (100).
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.read_engine = self.engine
        if not self.is_sqlite:
            event.listen(self.engine.sync_engine, "handle_error", _detect_disconnect)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            # WAL readers never block the writer nor wait for it: reads get connections of their own.
            self.read_engine = create_async_engine(
                url, pool_reset_on_return=None, pool_size=4, max_overflow=0, pool_timeout=60
            )
            event.listen(self.read_engine.sync_engine, "connect", _sqlite_read_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False, autoflush=False)
        self._lock_fd: int | None = None
        self._lock_conn: AsyncConnection | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A unit of work on a bare connection (Core only): the run engine's hot path, without the ORM."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (on SQLite, on a reader connection that never waits for the writer)."""
        async with self._read_sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Run a trivial query: raises ``DatabaseError`` if the database cannot be reached."""
        async with self.read_session() as session:
            await session.execute(text("SELECT 1"))

    async def acquire_engine_lock(self, data_dir: Path) -> None:
        """Refuse a second server with the embedded engine on the same database.

        Two embedded engines would break per-agent FIFO, and each one's start-up recovery would fail
        the other's live runs. SQLite: an exclusive lock on a file in the data dir. PostgreSQL: a
        session advisory lock on a connection held for the server's life (in autocommit, so it keeps
        no transaction open).
        """
        if self.is_sqlite:
            self._lock_fd = _lock_data_dir(data_dir)
            return
        conn = await (await self.engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
        if not await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_ENGINE_LOCK}):
            await conn.close()
            raise DatabaseLocked(
                "another agenthost server is already using this PostgreSQL database with the embedded "
                "run engine; stop it, or point this server at another database"
            )
        self._lock_conn = conn

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic), serialised across processes on PostgreSQL."""
        async with self.engine.connect() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                await conn.run_sync(_upgrade)
                await conn.commit()
            finally:
                if not self.is_sqlite:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    await conn.commit()

    async def close(self) -> None:
        if self._lock_conn is not None:
            await self._lock_conn.close()
            self._lock_conn = None
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


# asyncpg's own words for a connection whose server side is gone, beyond what SQLAlchemy recognises.
_DISCONNECT_MESSAGES = ("cannot switch to state", "connection was closed in the middle of operation")


def _detect_disconnect(context: ExceptionContext) -> None:
    """Mark a dead connection as a disconnect, so that SQLAlchemy invalidates the pool's connections
    (the next checkout connects afresh) and the API answers 503 rather than 500 (``api/errors.py``).

    A PostgreSQL restart or a terminated backend surfaces on a pooled asyncpg connection as an internal
    client error ("cannot switch to state 15; another operation is in progress"), not as a closed
    connection; every other pooled connection would fail the same way, one request each.
    """
    if context.is_disconnect:
        return
    cause = context.original_exception.__cause__ or context.original_exception
    if isinstance(cause, ConnectionDoesNotExistError) or any(m in str(cause) for m in _DISCONNECT_MESSAGES):
        context.is_disconnect = True


DatabaseFailure = Literal["busy", "unavailable", "refused"]

# SQLSTATE classes of a database that is away or out of room, not of a statement gone wrong: connection
# exceptions (08), insufficient resources such as too many connections (53), operator intervention
# such as a shutdown (57).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")


def database_failure(exc: Exception) -> DatabaseFailure:
    """What one of ``DATABASE_ERRORS`` means: no pooled connection came free in time (busy), the database
    is unreachable or out of capacity (unavailable), or it refused a statement (refused: our bug)."""
    if isinstance(exc, PoolTimeout):
        return "busy"
    if isinstance(exc, DBAPIError) and database_unavailable(exc):
        return "unavailable"
    return "refused"


def database_unavailable(exc: DBAPIError) -> bool:
    """Whether a database error means the database is unreachable or out of capacity."""
    if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
        return True
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
            return True
    return False


def driver_error(exc: Exception) -> BaseException:
    """The driver's own error under a SQLAlchemy one (what is worth logging), else ``exc`` itself."""
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    return orig if orig is not None else exc


def _lock_data_dir(data_dir: Path) -> int:
    """Take the data dir's exclusive lock; the returned descriptor holds it until closed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "agenthost.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DatabaseLocked(
            f"another agenthost server (pid {holder}) is already using {data_dir}; "
            "stop it, or start this one with a different --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _sqlite_read_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
