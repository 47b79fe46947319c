"""Processes of a scale-out deployment start together against one database (API servers and workers
joining a running deployment): each brings the built-in tools up to date without tripping over the
others. (Their migrations take turns under an advisory lock: ``Database.migrate``.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete, select

from agenthost.db.database import Database
from agenthost.db.rows import ToolRow
from agenthost.services.tools import ToolService
from agenthost.settings import Settings
from agenthost.tools.builtin import BUILTIN_TOOLS

PROCESSES = 4


def test_built_in_tools_synced_by_processes_at_once_are_stored_once(
    fresh_pg_database: Callable[[], str], tmp_path: Path
) -> None:
    settings = Settings(database_url=fresh_pg_database(), data_dir=tmp_path)

    async def main() -> list[str]:
        # One database engine (pool) per simulated process: their transactions overlap for real.
        dbs = [Database(settings.sqlalchemy_url(), pool_size=1) for _ in range(PROCESSES)]
        try:
            await dbs[0].migrate()
            for db in dbs:  # connected, as processes past their migrations are
                async with db.read_session() as session:
                    await session.execute(select(1))
            # A new version's built-in tools are missing from the database every process joins.
            async with dbs[0].session() as session:
                await session.execute(delete(ToolRow))
            await asyncio.gather(*(ToolService(db, settings).sync_builtins() for db in dbs))
            async with dbs[0].read_session() as session:
                return sorted((await session.scalars(select(ToolRow.id))).all())
        finally:
            for db in dbs:
                await db.close()

    assert asyncio.run(main()) == sorted(t.id for t in BUILTIN_TOOLS.values())
