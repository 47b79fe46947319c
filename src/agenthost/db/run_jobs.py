"""A run's procrastinate job, as SQL: deferring it inside the run's own transaction and recording its id
on the run, finding it again, and keeping procrastinate's job table analysed (``engine/jobs.py`` says
which queue, task and lock a run's job gets).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from agenthost.db.rows import RunRow

# procrastinate's own SQL function inserts the job, so it can join the caller's transaction.
_DEFER = text(
    "SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, :priority, :lock, NULL, "
    "CAST(:args AS jsonb), NULL)::procrastinate_job_to_defer_v1]))[1]"
)
_SET_JOB = update(RunRow).where(RunRow.id == bindparam("rid")).values(job_id=bindparam("jid"))
_JOB_ID = select(RunRow.job_id).where(RunRow.id == bindparam("rid"))


async def defer_job(
    conn: AsyncSession | AsyncConnection,
    run_id: str,
    *,
    queue: str,
    task: str,
    priority: int,
    lock: str,
    args: dict[str, Any],
) -> int:
    """Insert the run's job in the caller's transaction and record its id on the run."""
    job_id = await conn.scalar(
        _DEFER,
        {"queue": queue, "task": task, "priority": priority, "lock": lock, "args": json.dumps(args)},
    )
    assert job_id is not None
    await conn.execute(_SET_JOB, {"rid": run_id, "jid": job_id})
    return int(job_id)


async def run_job_id(session: AsyncSession, run_id: str) -> int | None:
    """The id of the run's latest job; None if it has none (or there is no such run)."""
    return await session.scalar(_JOB_ID, {"rid": run_id})


async def analyze_jobs(conn: AsyncConnection) -> None:
    """Refresh the planner's statistics on procrastinate's job table."""
    await conn.execute(text("ANALYZE procrastinate_jobs"))
