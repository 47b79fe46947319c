"""SQLAlchemy's aiosqlite dialect with one worker-thread hop per statement instead of four.

The stock adapter creates a cursor, executes, fetches and closes it as four separate calls into
aiosqlite's worker thread, each a round trip through a queue, a thread wake-up and the event loop.
On the run path that was most of a run's latency on SQLite (about 90 hops for a one-step run).
Here each ``execute``/``executemany`` runs the whole sequence in a single call in the worker
thread; everything else (transactions, pooling, type handling) is SQLAlchemy's own dialect.
Registered as ``sqlite+agenthost_aiosqlite``.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

from agenthost.db import sqlite_vec_loader

_Result = tuple[Any, int, int | None, list[Any]]


def _execute(conn: sqlite3.Connection, operation: str, parameters: Any) -> _Result:
    cursor = conn.cursor()
    try:
        cursor.execute(operation, parameters if parameters is not None else ())
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _executemany(conn: sqlite3.Connection, operation: str, seq_of_parameters: Sequence[Any]) -> _Result:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, seq_of_parameters)
        return cursor.description, cursor.rowcount, cursor.lastrowid, []
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_meta",)
    _awaitable_cursor_close = False  # nothing stays open between calls

    def __init__(self, adapt_connection: Any) -> None:  # no cursor is created up front
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._soft_closed_memoized = EMPTY_DICT
        self._meta: tuple[Any, int, int | None] = (None, -1, None)

    @property
    def description(self) -> Any:
        return self._meta[0]

    @property
    def rowcount(self) -> int:
        return self._meta[1]

    @property
    def lastrowid(self) -> Any:
        return self._meta[2]

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._run(_execute, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._run(_executemany, operation, seq_of_parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _run(self, fn: Any, operation: Any, parameters: Any) -> None:
        aio = self._connection
        async with self._adapt_connection._execute_mutex:
            description, rowcount, lastrowid, rows = await aio._execute(fn, aio._conn, operation, parameters)
        self._meta = (description, rowcount, lastrowid)
        self._rows = collections.deque(rows)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        sqlite_vec_loader.register()  # before the connection opens: SQLite loads it on open
        stock = super().connect(*arg, **kw)
        return OneHopConnection(self, stock._connection)


class OneHopSQLiteDialect(SQLiteDialect_aiosqlite):
    driver = "agenthost_aiosqlite"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        return OneHopDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register("sqlite.agenthost_aiosqlite", __name__, "OneHopSQLiteDialect")
