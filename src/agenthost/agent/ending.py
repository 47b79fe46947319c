"""Who may write a run, and how it ends.

An execution owns its run while the run is ``running`` with the execution's attempt number. Every
write after the start checks that in its own transaction: once a run is cancelled, failed by recovery
or handed back to the queue (``engine/handback.py``, which raises the attempt), nothing a late or
presumed-dead execution produces can land. ``end_run`` is the one write that sets a terminal status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.db.rows import AgentRow, RunRow
from agenthost.db.signals import notify_in
from agenthost.db.types import utcnow

ERROR_STOP_REASONS = {
    "error",
    "llm_api_error",
    "invalid_llm_response",
    "invalid_tool_call",
    "insufficient_credits",
    "context_window_overflow_in_system_prompt",
    "max_tokens_exceeded",
    "no_tool_call",
}


def status_for(stop_reason: str) -> str:
    """Letta's mapping from stop reason to run status."""
    if stop_reason == "cancelled":
        return "cancelled"
    return "failed" if stop_reason in ERROR_STOP_REASONS else "completed"


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run ends: its stop reason (the status follows), an error text, and timings."""

    stop_reason: str
    error: str | None = None
    ttft_ns: int | None = None
    duration_ns: int | None = None
    # What the run returns besides its messages (``logprobs``, ``turns``), kept in the run's metadata.
    result: dict[str, Any] | None = None
    # The execution that ends the run (None: whoever it is, e.g. a cancel from the API).
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    ended: bool
    callback_pending: bool


_OWNED = (RunRow.id == bindparam("rid"), RunRow.status == "running", RunRow.attempt == bindparam("att"))
# A no-op update: it finds the run only while the execution owns it, and locks the row until commit.
_FENCE = update(RunRow).where(*_OWNED).values(status="running")
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


async def owns_run(conn: AsyncConnection, run_id: str, attempt: int) -> bool:
    """Whether execution ``attempt`` still owns the run; the row stays locked until the transaction ends,
    and the run's followers are woken when it commits (what follows is the run's progress)."""
    if (await conn.execute(_FENCE, {"rid": run_id, "att": attempt})).rowcount != 1:
        return False
    await notify_in(conn, run_id)
    return True


async def mark_effects_started(conn: AsyncConnection, run_id: str, attempt: int) -> bool:
    """Record that the run may have had effects outside its transactions; False if not owned."""
    return bool((await conn.execute(_EFFECTS, {"rid": run_id, "att": attempt})).rowcount == 1)


async def end_run(
    conn: AsyncConnection, run_id: str, ending: Ending, from_statuses: tuple[str, ...]
) -> Committed | None:
    """Set the run's terminal status from ``from_statuses`` (and, with ``ending.attempt``, only for that
    execution); ``None``, writing nothing, when the run is not in such a state."""
    now = utcnow()
    values: dict[Any, Any] = {
        RunRow.status: status_for(ending.stop_reason),
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
    fence = [RunRow.id == run_id, RunRow.status.in_(from_statuses)]
    if ending.attempt is not None:
        fence.append(RunRow.attempt == ending.attempt)
    ended = (
        await conn.execute(
            update(RunRow).where(*fence).values(values).returning(RunRow.agent_id, RunRow.callback_pending)
        )
    ).first()
    if ended is None:
        return None
    await notify_in(conn, run_id)
    duration_ms = ending.duration_ns // 1_000_000 if ending.duration_ns is not None else None
    await conn.execute(
        _AGENT_LAST_RUN, {"aid": ended.agent_id, "now": now, "ms": duration_ms, "sr": ending.stop_reason}
    )
    return Committed(ended=True, callback_pending=bool(ended.callback_pending))
