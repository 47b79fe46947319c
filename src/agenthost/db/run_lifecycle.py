"""The run lifecycle: a run's statuses, the transitions between them, and the only code that writes them.

```
            claim             end (stop reason → status)
  created ────────► running ─────────────────────────────► completed | failed | cancelled
     ▲  │              │ │
     │  │   requeue    │ │ cancel, fail (hand-back that may not re-queue)
     │  └──────────────┼─┼──► cancelled | failed
     └─────────────────┘ │
                         └─ fence (running → running: "does this execution still own the run?")
```

Each transition is one function here; each takes the caller's connection (it joins the caller's
transaction) and writes nothing when the run is not in a status the transition starts from. Whenever a
run becomes terminal, here and only here, the same bookkeeping follows: the agent's last stop reason,
time and duration; the run's followers woken (``pg_notify`` in the transaction on PostgreSQL; the caller
wakes this process's own); the run's callback marked pending when it has a callback URL (the caller
hands the run to the dispatcher).

An execution owns its run while the run is ``running`` with the execution's attempt number; its writes
after the claim are fenced on that (``owns_run``), so once a run is cancelled, failed or re-queued
(which raises the attempt), nothing a late or presumed-dead execution produces can land.

The state machine is pure data and policy (``TRANSITIONS``, ``status_for``, ``hand_back_verdict``); it
lives with the SQL that applies it so that one module owns a run's status. Every layer that needs a
status or a set of them (the engines, the run use cases) imports them from here.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from agenthost.agent.persistence import Committed, Ending
from agenthost.db.rows import AgentRow, MessageRow, RunRow, StepRow
from agenthost.db.signals import notify_in
from agenthost.db.threads import set_pending_approval
from agenthost.db.types import utcnow
from agenthost.thread import Thread

log = logging.getLogger(__name__)


class RunStatus(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.CREATED, RunStatus.RUNNING})
TERMINAL: frozenset[RunStatus] = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class Transition(enum.StrEnum):
    CREATE = "create"  # the request is accepted: a new run, queued
    CLAIM = "claim"  # an execution starts the run
    FENCE = "fence"  # an execution's write, allowed only while it owns the run
    END = "end"  # the execution ends the run; the stop reason decides the status
    CANCEL = "cancel"  # a client cancels the run, queued or running
    REQUEUE = "requeue"  # a stopped execution had done nothing yet: the run waits again (attempt + 1)
    FAIL = "fail"  # a stopped execution may have had effects (or ran out of attempts)


# transition → (the statuses it starts from, the statuses it may lead to). CREATE starts from nothing.
TRANSITIONS: dict[Transition, tuple[frozenset[RunStatus], frozenset[RunStatus]]] = {
    Transition.CREATE: (frozenset(), frozenset({RunStatus.CREATED})),
    Transition.CLAIM: (frozenset({RunStatus.CREATED}), frozenset({RunStatus.RUNNING})),
    Transition.FENCE: (frozenset({RunStatus.RUNNING}), frozenset({RunStatus.RUNNING})),
    Transition.END: (frozenset({RunStatus.RUNNING}), TERMINAL),
    Transition.CANCEL: (ACTIVE, frozenset({RunStatus.CANCELLED})),
    Transition.REQUEUE: (ACTIVE, frozenset({RunStatus.CREATED})),
    Transition.FAIL: (ACTIVE, frozenset({RunStatus.FAILED})),
}

# Letta's stop reasons that make a run ``failed``; every other one but ``cancelled`` completes it.
ERROR_STOP_REASONS = frozenset(
    {
        "error",
        "llm_api_error",
        "invalid_llm_response",
        "invalid_tool_call",
        "insufficient_credits",
        "context_window_overflow_in_system_prompt",
        "max_tokens_exceeded",
        "no_tool_call",
    }
)

# Executions a run may start (the first and its re-queues) before a hand-back fails it instead: a run
# that brings down every process that starts it must not go round forever.
MAX_ATTEMPTS = 3


def status_for(stop_reason: str) -> RunStatus:
    """Letta's mapping from stop reason to run status."""
    if stop_reason == "cancelled":
        return RunStatus.CANCELLED
    return RunStatus.FAILED if stop_reason in ERROR_STOP_REASONS else RunStatus.COMPLETED


HandBack = Literal["requeue", "fail"]


def hand_back_verdict(*, had_steps: bool, effects_started: bool, attempt: int) -> tuple[HandBack, str]:
    """What becomes of a run whose execution stopped without ending it (a crash, a shutdown past the
    grace period, an error outside the loop), and why.

    Re-queue is safe only before the run's first committed step and before its first server-side tool
    with effects: then nothing it did outlives it. Otherwise, or after ``MAX_ATTEMPTS`` executions, the
    run fails, with the reason it was not retried.
    """
    if had_steps or effects_started:
        return "fail", "it had committed steps or started tools with effects, so it was not retried"
    if attempt >= MAX_ATTEMPTS:
        return "fail", f"it had been attempted {attempt} times, so it was not retried again"
    return "requeue", "nothing it did had effects yet"


Conn = AsyncConnection | AsyncSession
# Schedules a re-queued run again inside the hand-back's transaction (the distributed engine defers
# a job); None where the engine finds ``created`` runs by itself (the embedded engine, at start).
Reschedule = Callable[[Conn, str, Thread], Awaitable[None]]
HandBackOutcome = Literal["requeued", "failed", "untouched"]


def _from(transition: Transition) -> list[str]:
    return sorted(s.value for s in TRANSITIONS[transition][0])


@dataclass(frozen=True, slots=True)
class Claimed:
    """A run an execution just started: what it needs to load the rest."""

    agent_id: str
    conversation_id: str | None
    request: dict[str, Any]
    attempt: int


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A run a cancel ended."""

    run_id: str
    conversation_id: str | None
    callback_pending: bool


# A run's columns by attribute name (``seq`` is the database's to give).
RUN_COLUMNS = {c.key: c.columns[0] for c in RunRow.__mapper__.column_attrs if c.key != "seq"}
# Prepared once: building and cache-keying a statement per call was a large part of a run's CPU.
_CLAIM = (
    update(RunRow)
    .where(RunRow.id == bindparam("rid"), RunRow.status.in_(_from(Transition.CLAIM)))
    .values(status=RunStatus.RUNNING.value, started_at=bindparam("now"))
    .returning(RunRow.agent_id, RunRow.conversation_id, RunRow.request, RunRow.attempt)
)
_OWNED = (
    RunRow.id == bindparam("rid"),
    RunRow.status.in_(_from(Transition.FENCE)),
    RunRow.attempt == bindparam("att"),
)
# A no-op update: it finds the run only while the execution owns it, and locks the row until commit.
_FENCE = update(RunRow).where(*_OWNED).values(status=RunStatus.RUNNING.value)
_EFFECTS = update(RunRow).where(*_OWNED).values(effects_started=True)
_AGENT_LAST_RUN = (
    update(AgentRow)
    .where(AgentRow.id == bindparam("aid"))
    .values(
        last_run_completion=bindparam("now"),
        last_run_duration_ms=bindparam("ms"),
        last_stop_reason=bindparam("sr"),
    )
)
_HELD = (
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
_REQUEUE = (
    update(RunRow)
    .where(RunRow.id == bindparam("rid"), RunRow.status.in_(_from(Transition.REQUEUE)))
    .values(status=RunStatus.CREATED.value, attempt=RunRow.attempt + 1, started_at=None)
)


async def create_run(conn: Conn, values: dict[str, Any]) -> None:
    """(create) → created. ``values`` are the new run's columns; its status is set here."""
    values = {**values, "status": RunStatus.CREATED.value}
    await conn.execute(insert(RunRow).values({RUN_COLUMNS[k]: v for k, v in values.items() if v is not None}))


async def claim(conn: Conn, run_id: str) -> Claimed | None:
    """created → running; ``None`` when the run is no longer ``created`` (cancelled, deleted)."""
    row = (await conn.execute(_CLAIM, {"rid": run_id, "now": utcnow()})).first()
    return None if row is None else Claimed(*row)


async def owns_run(conn: AsyncConnection, run_id: str, attempt: int) -> bool:
    """(fence) Whether execution ``attempt`` still owns the run; the row stays locked until the
    transaction ends, and the run's followers are woken when it commits (what follows is progress)."""
    if (await conn.execute(_FENCE, {"rid": run_id, "att": attempt})).rowcount != 1:
        return False
    await notify_in(conn, run_id)
    return True


async def mark_effects_started(conn: AsyncConnection, run_id: str, attempt: int) -> bool:
    """Record, under the fence, that the run may have had effects outside its transactions."""
    return bool((await conn.execute(_EFFECTS, {"rid": run_id, "att": attempt})).rowcount == 1)


async def end_run(conn: Conn, run_id: str, ending: Ending) -> Committed | None:
    """(end) running → the stop reason's status, for execution ``ending.attempt`` (None: any);
    ``None``, writing nothing, when the run is not running (or not that execution's)."""
    fence = [RunRow.id == run_id, RunRow.status.in_(_from(Transition.END))]
    if ending.attempt is not None:
        fence.append(RunRow.attempt == ending.attempt)
    done = await _terminate(conn, run_id, fence, ending)
    return None if done is None else Committed(ended=True, callback_pending=done.callback_pending)


async def cancel_runs(conn: Conn, run_ids: Sequence[str]) -> list[Cancelled]:
    """(cancel) created | running → cancelled, for those of ``run_ids`` still active."""
    now = utcnow()
    rows = (
        await conn.execute(
            select(RunRow.id, RunRow.started_at)
            .where(RunRow.id.in_(list(run_ids)), RunRow.status.in_(_from(Transition.CANCEL)))
            .order_by(RunRow.seq)
            .with_for_update()
        )
    ).all()
    cancelled: list[Cancelled] = []
    for run_id, started_at in rows:
        ending = Ending("cancelled", duration_ns=_since(started_at, now))
        fence = [RunRow.id == run_id, RunRow.status.in_(_from(Transition.CANCEL))]
        done = await _terminate(conn, run_id, fence, ending, now=now)
        if done is not None:
            cancelled.append(Cancelled(run_id, done.conversation_id, done.callback_pending))
    return cancelled


async def hand_back(
    conn: Conn,
    run_id: str,
    *,
    job_id: int | None,
    reason: str,
    reschedule: Reschedule | None,
) -> tuple[HandBackOutcome, Committed | None]:
    """(requeue | fail) A run whose execution stopped without ending it: re-queued when nothing it did can
    have had effects, failed otherwise (``hand_back_verdict``).

    Only if job ``job_id`` (None: any) still holds it, ``running`` or (with a job id: the worker took
    the job but never started the run) ``created``. A re-queued run's input rows are removed (the
    next attempt writes them again), a pending approval they had answered is pending again, and the
    attempt goes up, fencing out the old execution's late writes. ``reason`` says what stopped the
    execution; a failed run's error adds why it was not retried.
    """
    run = (await conn.execute(_HELD, {"rid": run_id})).first()
    if run is None or (job_id is not None and run.job_id != job_id):
        return "untouched", None
    # A `created` run under no known job may be waiting on a job of its own: leave it alone.
    if run.status != RunStatus.RUNNING and (run.status != RunStatus.CREATED or job_id is None):
        return "untouched", None
    steps = await conn.scalar(_STEPS, {"rid": run_id}) if run.status == RunStatus.RUNNING else 0
    verdict, why = hand_back_verdict(
        had_steps=bool(steps), effects_started=run.effects_started, attempt=run.attempt
    )
    if verdict == "requeue":
        if run.status == RunStatus.RUNNING:
            await _undo_input(conn, run_id, Thread(run.agent_id, run.conversation_id))
        await conn.execute(_REQUEUE, {"rid": run_id})
        if reschedule is not None:
            await reschedule(conn, run_id, Thread(run.agent_id, run.conversation_id))
        log.warning("run %s re-queued (attempt %d): %s", run_id, run.attempt + 1, reason)
        return "requeued", None
    error = f"{reason}; {why}"
    ending = Ending("error", error, attempt=run.attempt)
    fence = [RunRow.id == run_id, RunRow.status == run.status, RunRow.attempt == run.attempt]
    committed = await _terminate(conn, run_id, fence, ending)
    log.warning("run %s failed: %s", run_id, error)
    return "failed", None if committed is None else Committed(True, committed.callback_pending)


async def running_runs(conn: Conn) -> list[str]:
    """Every ``running`` run, oldest first: at an embedded engine's start, what a dead process left."""
    stmt = select(RunRow.id).where(RunRow.status == RunStatus.RUNNING.value).order_by(RunRow.seq)
    return list((await conn.execute(stmt)).scalars().all())


async def queued_runs(conn: Conn) -> list[tuple[str, Thread]]:
    """Every ``created`` run with its thread, in acceptance order (a re-queued run keeps its place)."""
    stmt = (
        select(RunRow.id, RunRow.agent_id, RunRow.conversation_id)
        .where(RunRow.status == RunStatus.CREATED.value)
        .order_by(RunRow.seq)
    )
    return [(r, Thread(a, c)) for r, a, c in (await conn.execute(stmt)).all()]


async def run_status(conn: Conn, run_id: str) -> RunStatus | None:
    status = await conn.scalar(select(RunRow.status).where(RunRow.id == run_id))
    return None if status is None else RunStatus(status)


@dataclass(frozen=True, slots=True)
class _Terminated:
    conversation_id: str | None
    callback_pending: bool


async def _terminate(
    conn: Conn, run_id: str, fence: list[Any], ending: Ending, *, now: datetime | None = None
) -> _Terminated | None:
    """The one terminal write, with its bookkeeping; ``None`` when ``fence`` finds no run."""
    now = now or utcnow()
    values: dict[Any, Any] = {
        RunRow.status: status_for(ending.stop_reason).value,
        RunRow.stop_reason: ending.stop_reason,
        RunRow.completed_at: now,
        RunRow.ttft_ns: ending.ttft_ns,
        RunRow.total_duration_ns: ending.duration_ns,
        RunRow.callback_pending: RunRow.callback_url.is_not(None),
    }
    metadata: dict[str, Any] = dict(ending.result or {})
    if ending.error is not None:
        # Run metadata holds only what the server records (the API takes none on create).
        metadata["error"] = ending.error
    if metadata:
        values[RunRow.metadata_] = metadata
    ended = (
        await conn.execute(
            update(RunRow)
            .where(*fence)
            .values(values)
            .returning(RunRow.agent_id, RunRow.conversation_id, RunRow.callback_pending)
        )
    ).first()
    if ended is None:
        return None
    await notify_in(conn, run_id)
    duration_ms = ending.duration_ns // 1_000_000 if ending.duration_ns is not None else None
    await conn.execute(
        _AGENT_LAST_RUN, {"aid": ended.agent_id, "now": now, "ms": duration_ms, "sr": ending.stop_reason}
    )
    return _Terminated(ended.conversation_id, bool(ended.callback_pending))


async def _undo_input(conn: Conn, run_id: str, thread: Thread) -> None:
    """Remove what the run's start wrote, so that the next attempt starts from the same state."""
    answer = (await conn.execute(_ANSWER, {"rid": run_id})).scalars().first()
    await conn.execute(_INPUT_ROWS, {"rid": run_id})
    if answer is not None and answer.get("approval_request_id"):
        await set_pending_approval(conn, thread, answer["approval_request_id"])


def _since(started_at: datetime | None, now: datetime) -> int | None:
    return None if started_at is None else int((now - started_at).total_seconds() * 1e9)
