"""A run's idempotency keys: the ``otid``s of the messages that started it, one per agent
(a retried ``create`` with the same otids is answered with the run they started)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.rows import RunKeyRow


async def runs_by_otid(session: AsyncSession, agent_id: str, otids: Sequence[str]) -> dict[str, str]:
    """otid → the id of the run it started, for those of ``otids`` the agent has already accepted."""
    keys = (
        await session.scalars(
            select(RunKeyRow).where(RunKeyRow.agent_id == agent_id, RunKeyRow.otid.in_(otids))
        )
    ).all()
    return {k.otid: k.run_id for k in keys}


async def otids_of_run(session: AsyncSession, run_id: str) -> set[str]:
    """Every otid the run was started with."""
    return set((await session.scalars(select(RunKeyRow.otid).where(RunKeyRow.run_id == run_id))).all())


async def add_keys(session: AsyncSession, agent_id: str, run_id: str, otids: Sequence[str]) -> None:
    """Record that ``otids`` started the run (a unique key: a concurrent request with one of them fails)."""
    keys = [{"agent_id": agent_id, "otid": o, "run_id": run_id} for o in otids]
    await session.execute(insert(RunKeyRow), keys)


async def free_otids(session: AsyncSession, agent_id: str, otids: Sequence[str]) -> None:
    """Forget ``otids`` (the run they started was deleted: they may start another)."""
    await session.execute(delete(RunKeyRow).where(RunKeyRow.agent_id == agent_id, RunKeyRow.otid.in_(otids)))
