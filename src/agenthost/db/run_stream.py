"""What following a run reads: its status, and its events after a cursor, from its committed messages or,
for a run that streams tokens, from its event log (``run_events``, written by ``db/token_log.py``).

The status is read before the events, in the caller's read transaction: a run's last messages commit with
its terminal status, so a terminal status means the events read next are all there are.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.messages import message_view
from agenthost.db.rows import MessageRow, RunEventRow, RunRow
from agenthost.schemas.letta_messages import INPUT_TYPES, LETTA_MESSAGE, LettaMessage

_STATUS = select(RunRow.status, RunRow.stop_reason).where(RunRow.id == bindparam("rid"))
# What the agent produced (the client's own input is not part of the stream).
_PAGE = (
    select(MessageRow)
    .where(
        MessageRow.run_id == bindparam("rid"),
        MessageRow.seq > bindparam("after"),
        MessageRow.message_type.not_in(INPUT_TYPES),
    )
    .order_by(MessageRow.seq)
    .limit(bindparam("n"))
)
_EVENTS = (
    select(RunEventRow.seq, RunEventRow.body)
    .where(RunEventRow.run_id == bindparam("rid"), RunEventRow.seq > bindparam("after"))
    .order_by(RunEventRow.seq)
    .limit(bindparam("n"))
)


@dataclass(frozen=True, slots=True)
class Progress:
    """A run's status (None: the run is gone) and stop reason, and its next events."""

    status: str | None
    stop_reason: str | None
    events: list[LettaMessage]


async def progress(
    session: AsyncSession, run_id: str, *, after: int, limit: int, token_events: bool
) -> Progress:
    """The run's status, then up to ``limit`` of its events after ``after`` (a ``seq_id``): its logged
    events if it streams tokens (``token_events``), else its committed messages but its input."""
    state = (await session.execute(_STATUS, {"rid": run_id})).first()
    status, stop_reason = state if state is not None else (None, None)
    params = {"rid": run_id, "after": after, "n": limit}
    events: list[LettaMessage]
    if token_events:
        logged = (await session.execute(_EVENTS, params)).all()
        events = [LETTA_MESSAGE.validate_python({**body, "seq_id": seq}) for seq, body in logged]
    else:
        events = [message_view(row) for row in (await session.scalars(_PAGE, params)).all()]
    return Progress(status, stop_reason, events)
