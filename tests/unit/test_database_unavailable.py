"""Which database errors mean "the database is away or full" (a 503) and which are a statement's fault."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from agenthost.db.database import database_unavailable


def wrapped(error: Exception) -> DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises it: the driver's error is the DBAPI error's cause."""
    adapted = Exception(str(error))
    adapted.__cause__ = error
    return DBAPIError("SELECT 1", None, adapted)


def test_too_many_connections_is_unavailability() -> None:
    assert database_unavailable(wrapped(asyncpg.exceptions.TooManyConnectionsError("too many clients")))


def test_an_administrator_shutdown_is_unavailability() -> None:
    assert database_unavailable(wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")))


def test_an_invalidated_connection_is_unavailability() -> None:
    error = DBAPIError("SELECT 1", None, Exception("cannot switch to state 15"), connection_invalidated=True)
    assert database_unavailable(error)
    assert database_unavailable(OperationalError("SELECT 1", None, Exception("could not connect")))


def test_a_refused_statement_is_not() -> None:
    assert not database_unavailable(wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")))
    assert not database_unavailable(IntegrityError("INSERT", None, Exception("duplicate key")))
    assert not database_unavailable(wrapped(asyncpg.exceptions.UndefinedColumnError("no such column")))
