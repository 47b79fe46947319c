"""The one-hop SQLite dialect behaves like the stock one where our code depends on it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from agenthost.db import sqlite_driver


async def test_rowcount_returning_executemany_and_errors(tmp_path: Path) -> None:
    assert sqlite_driver.OneHopSQLiteDialect.driver == "agenthost_aiosqlite"
    engine = create_async_engine(f"sqlite+agenthost_aiosqlite:///{tmp_path / 't.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "a"}, {"v": "b"}, {"v": "c"}])
            updated = await conn.execute(text("UPDATE t SET v = v || '!' WHERE v IN ('a', 'b')"))
            assert updated.rowcount == 2
            returned = await conn.execute(text("UPDATE t SET v = 'z' WHERE v = 'c' RETURNING id"))
            assert returned.scalar_one() == 3
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
            assert rows == ["a!", "b!", "z"]
            try:
                await conn.execute(text("INSERT INTO t (v) VALUES ('z')"))
            except Exception as exc:  # the DBAPI error is wrapped as SQLAlchemy's, as with the stock driver
                assert type(exc).__name__ == "IntegrityError"
            else:
                raise AssertionError("a unique violation must raise")
    finally:
        await engine.dispose()
