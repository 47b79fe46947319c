"""Following a run as a stream of events: replayed from what the run has committed, then live.

A run's messages are committed step by step, each with a ``seq`` that only grows, so they are the
run's durable, ordered event log. A run that streams tokens has a log of its own instead
(``run_events``, written by ``db/token_log.py``): the deltas of each message as the LLM generates
them, then the step's other messages. A stream pages through the run's log after its
cursor (``starting_after``: the ``seq_id`` of the last event the client has; ``db/run_stream.py``
reads it). With nothing new, it waits for the run's next commit (``db/signals.py``), at most
``poll_interval``. Once the run is terminal and everything is sent, it ends with the run's stop reason
and usage. The status is read before the messages in one read transaction: the run's last messages
commit with its terminal status, so a terminal status means the read that follows sees them all.
Nothing expires: a run can be streamed from its start for as long as it is kept.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio

from agenthost.db import run_stream
from agenthost.db import runs as runs_db
from agenthost.db.database import Database
from agenthost.db.run_lifecycle import TERMINAL
from agenthost.db.runs import RunRecord
from agenthost.db.signals import RunSignals
from agenthost.db.types import utcnow
from agenthost.runs.results import view_options
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.services.views import shape_views

# A run's messages, then its end (stop reason, usage) and keep-alive pings as plain dicts.
StreamEvent = LettaMessage | dict[str, Any]


class RunStreams:
    def __init__(self, db: Database, signals: RunSignals, *, ping_interval_s: float) -> None:
        self._db = db
        self._signals = signals
        self._ping_interval_s = ping_interval_s

    async def open(self, run_id: str) -> RunRecord:
        """The run to follow (404 before any event is sent)."""
        async with self._db.read_session() as session:
            return await runs_db.get_run_record(session, run_id)

    async def follow(
        self,
        run: RunRecord,
        *,
        starting_after: int = 0,
        include_pings: bool = True,
        poll_interval_s: float = 0.1,
        batch_size: int = 100,
    ) -> AsyncIterator[StreamEvent]:
        """The run's events after ``starting_after``, then its stop reason and usage once it ends."""
        await self._signals.listen()
        with self._signals.watch(run.id) as progressed:
            async for event in self._follow(
                run, starting_after, include_pings, poll_interval_s, batch_size, progressed
            ):
                yield event

    async def _follow(
        self,
        run: RunRecord,
        starting_after: int,
        include_pings: bool,
        poll_interval_s: float,
        batch_size: int,
        progressed: asyncio.Event,
    ) -> AsyncIterator[StreamEvent]:
        options = view_options(run.request_config)
        cursor = starting_after
        last_sent = time.monotonic()
        while True:
            progressed.clear()
            async with self._db.read_session() as session:
                # A run streaming tokens logs its events (deltas included) in run_events; others are
                # read off their committed messages.
                now = await run_stream.progress(
                    session, run.id, after=cursor, limit=batch_size, token_events=run.token_events
                )
                status, stop_reason, items = now.status, now.stop_reason, now.events
                usage = await runs_db.run_usage(session, run.id) if status in TERMINAL else None
            if items:
                cursor = items[-1].seq_id or cursor
                for event in shape_views(items, **options):
                    yield event
                last_sent = time.monotonic()
                if len(items) == batch_size:
                    continue
            if status is None or status in TERMINAL:
                yield {"message_type": "stop_reason", "stop_reason": stop_reason or "error"}
                if usage is not None:
                    yield {
                        "message_type": "usage_statistics",
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total_tokens,
                        "step_count": usage.step_count,
                        "run_ids": [run.id],
                    }
                return
            if include_pings and time.monotonic() - last_sent >= self._ping_interval_s:
                yield {
                    "message_type": "ping",
                    "id": f"ping-{uuid.uuid4()}",
                    "date": utcnow().isoformat(),
                    "run_id": run.id,
                }
                last_sent = time.monotonic()
            # Woken by the run's next commit (this process's or, on PostgreSQL, any process's), or at
            # the poll interval should a wake-up be missed.
            with anyio.move_on_after(poll_interval_s):
                await progressed.wait()
