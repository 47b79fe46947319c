"""Callback delivery bookkeeping on a run (``callback_*`` columns): who holds the lease on delivering
it, and how the last attempt went (``runs/callbacks.py`` delivers).

The terminal transition marks a callback pending (``db/run_lifecycle.py``); nothing here touches a run's
status.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from agenthost.db.rows import RunRow
from agenthost.db.types import utcnow

_UNLEASED_NOW = or_(RunRow.callback_lease_until.is_(None), RunRow.callback_lease_until < bindparam("now"))
_CLAIM = (
    update(RunRow)
    .where(RunRow.id == bindparam("rid"), RunRow.callback_pending.is_(True), _UNLEASED_NOW)
    .values(callback_lease_until=bindparam("until"))
)
_EXTEND = update(RunRow).where(RunRow.id == bindparam("rid")).values(callback_lease_until=bindparam("until"))
_UNLEASED = select(RunRow.id).where(RunRow.callback_pending.is_(True), _UNLEASED_NOW).limit(bindparam("n"))


async def claim_lease(conn: AsyncConnection, run_id: str, now: datetime, until: datetime) -> bool:
    """Take the lease on delivering the run's callback until ``until``, only if it is pending and nobody
    holds the lease at ``now``."""
    result = await conn.execute(_CLAIM, {"rid": run_id, "now": now, "until": until})
    return bool(result.rowcount == 1)


async def extend_lease(conn: AsyncConnection, run_id: str, until: datetime) -> None:
    await conn.execute(_EXTEND, {"rid": run_id, "until": until})


async def unleased_callbacks(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    """Up to ``limit`` runs whose callback is pending and whose lease (if any) ran out before ``now``."""
    return list((await session.scalars(_UNLEASED, {"now": now, "n": limit})).all())


async def record_attempt(
    session: AsyncSession, run_id: str, status: int | None, error: str | None, *, final: bool
) -> None:
    """Record a delivery attempt's answer (``status``: its HTTP status; ``error``: why it failed); a
    ``final`` one settles the callback and releases its lease."""
    values: dict[str, object] = {
        "callback_sent_at": utcnow(),
        "callback_status_code": status,
        "callback_error": error,
    }
    if final:
        values.update(callback_pending=False, callback_lease_until=None)
    await session.execute(update(RunRow).where(RunRow.id == run_id).values(**values))
