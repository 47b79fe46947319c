"""A run whose execution stopped without ending it (its worker died, shut down past its grace period, or
hit an error outside the agent loop's handling) is handed back: re-queued when nothing it did can have
had effects, failed otherwise.

Re-queue is safe only before the run's first committed step and before its first server-side tool
with effects (``runs.effects_started``): the run's input rows are removed (the next attempt writes
them again), a pending approval they had answered is pending again, the attempt number goes up (the
old execution's late writes are fenced out by it) and a new job is deferred in the same transaction,
ahead of the agent's other queued runs. A run still ``created`` under the job (its worker took the job
but never started the run) is re-queued the same way. Otherwise, and for a run already handed back
``MAX_ATTEMPTS - 1`` times (a run that brings down every worker that starts it must not go round
forever), the run fails with ``stop_reason=error`` and a reason that says what happened.
"""

from __future__ import annotations

import logging
from typing import Literal

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.agent.ending import Committed, Ending, end_run
from agenthost.db.database import Database
from agenthost.db.rows import MessageRow, RunRow, StepRow
from agenthost.db.threads import set_pending_approval
from agenthost.engine.jobs import HANDBACK_PRIORITY, defer_run

log = logging.getLogger(__name__)

Outcome = Literal["requeued", "failed", "untouched"]
# Executions a run may start (the first and its re-queues) before a hand-back fails it instead.
MAX_ATTEMPTS = 3

_RUN = (
    select(
        RunRow.agent_id,
        RunRow.conversation_id,
        RunRow.status,
        RunRow.attempt,
        RunRow.effects_started,
        RunRow.job_id,
    )
    .where(RunRow.id == bindparam("rid"))
    .with_for_update()
)
_STEPS = select(func.count()).select_from(StepRow).where(StepRow.run_id == bindparam("rid"))
_ANSWER = select(MessageRow.body).where(
    MessageRow.run_id == bindparam("rid"), MessageRow.message_type == "approval_response_message"
)
# Compaction records stay: the agent's context already moved past the messages they summarise.
_INPUT_ROWS = delete(MessageRow).where(
    MessageRow.run_id == bindparam("rid"),
    MessageRow.message_type.not_in(("summary_message", "event_message")),
)


async def hand_back(
    db: Database, run_id: str, *, job_id: int | None, reason: str
) -> tuple[Outcome, Committed | None]:
    """Re-queue or fail ``run_id`` if job ``job_id`` (None: any job) still holds it, ``running`` or (with
    a job id) not yet started. ``reason`` says what stopped the execution; a failed run's error adds
    why it was not retried."""
    async with db.transaction() as conn:
        run = (await conn.execute(_RUN, {"rid": run_id})).first()
        if run is None or (job_id is not None and run.job_id != job_id):
            return "untouched", None
        # A `created` run under no known job may be waiting on a job of its own: leave it alone.
        if run.status != "running" and (run.status != "created" or job_id is None):
            return "untouched", None
        steps = await conn.scalar(_STEPS, {"rid": run_id}) if run.status == "running" else 0
        effects = bool(steps) or run.effects_started
        if not effects and run.attempt < MAX_ATTEMPTS:
            if run.status == "running":
                await _undo_input(conn, run_id, run.agent_id, run.conversation_id)
            await conn.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(status="created", attempt=run.attempt + 1, started_at=None)
            )
            await defer_run(conn, run_id, run.conversation_id or run.agent_id, priority=HANDBACK_PRIORITY)
            log.warning("run %s re-queued (attempt %d): %s", run_id, run.attempt + 1, reason)
            return "requeued", None
        if effects:
            why = "it had committed steps or started tools with effects, so it was not retried"
        else:
            why = f"it had been attempted {run.attempt} times, so it was not retried again"
        error = f"{reason}; {why}"
        ending = Ending("error", error, attempt=run.attempt)
        committed = await end_run(conn, run_id, ending, (run.status,))
        log.warning("run %s failed: %s", run_id, error)
        return "failed", committed


async def _undo_input(conn: AsyncConnection, run_id: str, agent_id: str, conversation_id: str | None) -> None:
    """Remove what the run's start wrote, so that the next attempt starts from the same state."""
    answer = (await conn.execute(_ANSWER, {"rid": run_id})).scalars().first()
    await conn.execute(_INPUT_ROWS, {"rid": run_id})
    if answer is not None and answer.get("approval_request_id"):
        await set_pending_approval(conn, agent_id, conversation_id, answer["approval_request_id"])
