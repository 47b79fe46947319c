"""The event log of a run streamed token by token (``stream_tokens``): deltas as the LLM generates them.

A run that streams tokens keeps its events in ``run_events`` rather than reading them off its messages
(``runs/streams.py``). The LLM client hands each piece of text to :class:`TokenLog` (a
``DeltaSink``), which turns it into an event of the message it belongs to: every delta of one message
carries that message's id, given out with its first delta, and the message committed with the step
keeps that id. A delta after a quiet spell is written at once; the ones that follow within
``flush_interval_s`` of that write are written together when it has passed, so a run streaming tokens
costs at most one write per interval. Each write is a transaction fenced on the run's ownership that
also wakes the run's followers; the step's commit then
writes what is still pending and the step's other messages (tool calls and returns, approval
requests, and any message that was not streamed), so the log holds every event once, in order.

Writes are serialised by one lock: a flush and a commit never interleave, so a later event always has
a higher ``seq``. A retried LLM call starts its answer over under new message ids; the deltas already
logged for the unfinished answer stay, as a message that never completed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.agent.persistence import StoredMessage
from agenthost.db.database import Database
from agenthost.db.messages import message_view
from agenthost.db.rows import RunEventRow
from agenthost.db.run_lifecycle import owns_run
from agenthost.db.signals import RunSignals
from agenthost.db.types import utcnow
from agenthost.ids import new_id
from agenthost.llm.base import Delta
from agenthost.schemas.letta_messages import INPUT_TYPES, AssistantMessage, ReasoningMessage

FLUSH_INTERVAL_S = 0.05


class TokenLog:
    def __init__(
        self,
        db: Database,
        signals: RunSignals | None,
        run_id: str,
        attempt: int,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self._db = db
        self._signals = signals
        self._run_id = run_id
        self._attempt = attempt
        self._interval = flush_interval_s
        self._lock = asyncio.Lock()
        self._pending: list[dict[str, Any]] = []
        self._timer: asyncio.Task[None] | None = None
        self._last_flush = -math.inf
        # (kind, index) → (message id, otid, date) of the messages this LLM call is streaming.
        self._open: dict[tuple[str, int], tuple[str, str, datetime]] = {}
        self._step_id: str | None = None
        # Ids of every message delivered as deltas: their whole rows are not logged again.
        self.streamed: set[str] = set()

    def begin_call(self, step_id: str) -> None:
        """A new LLM call (of step ``step_id``): its pieces belong to new messages."""
        self._step_id = step_id
        self._open.clear()

    def message_ids(self, kind: str, index: int = 0) -> tuple[str, str] | None:
        """The (id, otid) the streamed message of this call has, if any of it was streamed."""
        opened = self._open.get((kind, index))
        return (opened[0], opened[1]) if opened is not None else None

    # -- DeltaSink -------------------------------------------------------------------------

    def delta(self, piece: Delta) -> None:
        key = (piece.kind, piece.index)
        opened = self._open.get(key)
        if opened is None:
            opened = (new_id("message"), new_id("otid"), utcnow())
            self._open[key] = opened
            self.streamed.add(opened[0])
        message_id, otid, date = opened
        # model_construct: one call per token, and every field is ours (fresh ids, the LLM client's text).
        delta: AssistantMessage | ReasoningMessage
        if piece.kind == "reasoning":
            delta = ReasoningMessage.model_construct(
                id=message_id,
                otid=otid,
                date=date,
                run_id=self._run_id,
                step_id=self._step_id,
                reasoning=piece.text,
                source="reasoner_model",
            )
        else:
            delta = AssistantMessage.model_construct(
                id=message_id,
                otid=otid,
                date=date,
                run_id=self._run_id,
                step_id=self._step_id,
                content=piece.text,
            )
        self._pending.append(delta.model_dump(mode="json", exclude_none=True))
        if self._timer is None:
            # The first delta after a quiet spell goes out at once; then at most one write per interval.
            delay = max(0.0, self._last_flush + self._interval - time.monotonic())
            self._timer = asyncio.get_running_loop().create_task(self._flush_later(delay))

    def restart(self) -> None:
        self._open.clear()

    # -- writing -----------------------------------------------------------------------------

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
            async with self._db.transaction() as conn:
                if not await owns_run(conn, self._run_id, self._attempt):
                    return  # cancelled or taken over: the loop finds out at its next write
                await insert_events(conn, self._run_id, batch)
        if self._signals is not None:
            self._signals.wake(self._run_id)

    @asynccontextmanager
    async def handover(self, rows: Iterable[StoredMessage] = ()) -> AsyncIterator[list[dict[str, Any]]]:
        """For a commit: the pending deltas, then the events of ``rows`` not streamed. No flush runs
        until the block ends, so the commit writes them in order; write them with ``insert_events``."""
        async with self._lock:
            events, self._pending = self._pending, []
            events.extend(
                message_event(row)
                for row in rows
                if row.id not in self.streamed and row.message_type not in INPUT_TYPES
            )
            yield events

    async def close(self) -> None:
        """Let a scheduled flush finish (it writes nothing once the run has ended)."""
        if self._timer is not None:
            await asyncio.gather(self._timer, return_exceptions=True)


def message_event(row: StoredMessage) -> dict[str, Any]:
    """A whole message as an event of the log (its ``seq_id`` is the event's own)."""
    return message_view(row).model_dump(mode="json", exclude={"seq_id"})


async def insert_events(conn: AsyncConnection, run_id: str, events: list[dict[str, Any]]) -> None:
    if events:
        await conn.execute(insert(RunEventRow), [{"run_id": run_id, "body": e} for e in events])
