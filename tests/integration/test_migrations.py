"""The Alembic migrations build exactly the schema the ORM rows describe, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from agenthost.db.database import Database
from agenthost.db.rows import Base
from agenthost.settings import Settings


def test_migrated_schema_has_no_drift(
    backend: str, tmp_path: Path, fresh_pg_database: Callable[[], str]
) -> None:
    database_url = fresh_pg_database() if backend == "postgres" else None
    asyncio.run(_check(Settings(data_dir=tmp_path, database_url=database_url).sqlalchemy_url()))


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
        await db.migrate()  # applying again is a no-op
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        assert diff == []
    finally:
        await db.close()
