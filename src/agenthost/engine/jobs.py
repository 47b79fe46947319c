"""The procrastinate side of the distributed engine: the app, its schema, and deferring a run's job.

A run is one procrastinate job of task ``agenthost.execute_run`` on queue ``runs``, with its lane's lock
(``agent:<agent_id>`` for an agent's default thread, ``conversation:<id>`` for a conversation):
procrastinate runs at most one job per lock at a time, in job-id order, which is the lane's FIFO. The
job is inserted by procrastinate's own SQL function from inside the API's transaction
(``defer_sql``), so a run and its job commit together or not at all.
"""

from __future__ import annotations

import logging
from typing import Any

import procrastinate
import psycopg

from agenthost.db import run_jobs
from agenthost.db.run_lifecycle import Conn
from agenthost.thread import Thread

log = logging.getLogger(__name__)

TASK_NAME = "agenthost.execute_run"
QUEUE = "runs"
# A handed-back run outranks the runs queued behind it on the same agent (same lock, lower job id
# first otherwise), so the agent's order holds when its head run is re-queued with a new job.
HANDBACK_PRIORITY = 1
_SCHEMA_LOCK = 0x61676E7470726F63  # "agntproc": one process applies procrastinate's schema at a time
# procrastinate's fetch walks queued jobs in order and rejects each whose lock has a job running or
# queued ahead of it. Two additions keep it cheap however stale the table's statistics are (a burst of
# defers into a table last analysed empty made the planner sort every queued job, probing each by a
# full index scan: 25-50 ms a fetch at 2,000 queued runs, 1 s at 20,000, measured here):
# an index that answers "this lock's jobs" in one lookup, and a plan that takes the queue's order
# from its index and stops at the first free job.
_FETCH_TUNING = (
    "CREATE INDEX IF NOT EXISTS agenthost_jobs_lock_order ON procrastinate_jobs "
    "(lock, priority DESC, id) WHERE status IN ('todo', 'doing')",
    "ALTER FUNCTION procrastinate_fetch_job_v2(character varying[], bigint) "
    "SET enable_bitmapscan = off SET enable_sort = off",
)


def lock_of(thread: Thread) -> str:
    """The job lock of a thread: ``agent:<agent id>`` for an agent's default thread (as before
    conversations), ``conversation:<conversation id>`` for a conversation."""
    if thread.conversation_id is not None:
        return f"conversation:{thread.conversation_id}"
    return f"agent:{thread.agent_id}"


async def defer_run(conn: Conn, run_id: str, thread: Thread, *, priority: int = 0) -> int:
    """Insert the run's job in the caller's transaction and record its id on the run."""
    # The job's argument keeps its first name, "agent_id", so that jobs queued before lanes still run.
    args: dict[str, Any] = {"run_id": run_id, "agent_id": thread.lane}
    return await run_jobs.defer_job(
        conn, run_id, queue=QUEUE, task=TASK_NAME, priority=priority, lock=lock_of(thread), args=args
    )


def new_app(conninfo: str, *, pool_max: int = 10) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=pool_max)
    return procrastinate.App(connector=connector)


async def ensure_schema(conninfo: str) -> None:
    """Apply procrastinate's schema once per database (several processes may start together)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            row = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')")).fetchone()
            if row is None or row[0] is None:
                # Several statements and no parameters: psycopg sends it as one simple query.
                await conn.execute(procrastinate.schema.SchemaManager.get_schema())
            for statement in _FETCH_TUNING:
                try:
                    await conn.execute(statement)
                except psycopg.errors.InsufficientPrivilege:
                    # Schema owned by another role: runs still work, fetches cost more with long queues.
                    log.warning(
                        "cannot tune procrastinate's job fetch (not the schema's owner): %s", statement
                    )
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
