"""The embedded engine: in-process, zero setup, the default.

Each lane (a thread of an agent: its default thread, or a conversation) with queued runs gets one
drainer task that executes its runs strictly one after another, in the order they were enqueued; a
semaphore bounds how many lanes run at once. The database is the source of truth: on start, each run a
dead process left ``running`` is handed back as the distributed engine does (``db/run_lifecycle.py``):
re-queued when it had done nothing yet, failed with a reason otherwise; then the ``created`` runs are
queued again in ``seq`` order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from agenthost.agent.control import RunControl
from agenthost.agent.loop import AgentLoop
from agenthost.db import run_lifecycle
from agenthost.db.database import Database
from agenthost.db.run_lifecycle import TERMINAL
from agenthost.engine.base import RunEngine
from agenthost.thread import Thread

log = logging.getLogger(__name__)

CRASH_REASON = "the server stopped while this run was in progress (recovered at start-up)"
INTERNAL_REASON = "this run's execution hit an internal error (see the server's log)"


class EmbeddedEngine(RunEngine):
    def __init__(
        self, db: Database, loop: AgentLoop, *, max_concurrent: int, shutdown_grace_s: float = 10.0
    ) -> None:
        self._db = db
        self._loop = loop
        self._slots = asyncio.Semaphore(max_concurrent)
        self._grace = shutdown_grace_s
        self._queues: dict[str, deque[str]] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._controls: dict[str, RunControl] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._stopping = False

    async def start(self) -> None:
        outcomes: dict[str, int] = {}
        async with self._db.transaction() as conn:
            for run_id in await run_lifecycle.running_runs(conn):
                outcome, _ = await run_lifecycle.hand_back(
                    conn, run_id, job_id=None, reason=CRASH_REASON, reschedule=None
                )
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            queued = await run_lifecycle.queued_runs(conn)
        if outcomes:
            log.warning("runs left running by a previous process: %s", outcomes)
        for run_id, thread in queued:
            await self.enqueue(run_id, thread)
        if queued:
            log.info("queued %d runs accepted before the last stop", len(queued))

    async def enqueue(self, run_id: str, thread: Thread) -> None:
        lane = thread.lane
        if self._stopping:
            return  # stays `created` in the database; the next start picks it up
        self._queues.setdefault(lane, deque()).append(run_id)
        if lane not in self._drainers:
            self._drainers[lane] = asyncio.create_task(self._drain(lane), name=f"drain:{lane}")

    async def _drain(self, lane: str) -> None:
        queue = self._queues[lane]
        try:
            while queue and not self._stopping:
                run_id = queue.popleft()
                async with self._slots:
                    if self._stopping:
                        break
                    control = RunControl()
                    self._controls[run_id] = control
                    try:
                        await self._loop.execute(run_id, control)
                    except Exception:
                        # The loop ends runs on their own failures; this is the database failing under
                        # it. Left as is, the run would stay `running` until the next start.
                        log.exception("run %s: execution failed outside the agent loop", run_id)
                        await self._hand_back(run_id, INTERNAL_REASON)
                    finally:
                        self._controls.pop(run_id, None)
                        self._wake(run_id)
        finally:
            if not queue:
                self._queues.pop(lane, None)
            self._drainers.pop(lane, None)
            if queue and not self._stopping:  # raced with an enqueue while exiting
                self._drainers[lane] = asyncio.create_task(self._drain(lane), name=f"drain:{lane}")

    async def interrupt(self, run_id: str) -> None:
        control = self._controls.get(run_id)
        if control is not None:
            control.interrupt("cancelled")
        self._wake(run_id)  # a run cancelled while queued is already terminal

    async def wait(self, run_id: str) -> None:
        # A run ends in the loop (which wakes us) or by a cancel while queued; the periodic re-check
        # covers a run that another process ended. The waiter is registered before the check, so a
        # run ending during the check still wakes it.
        while True:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(run_id, []).append(future)
            try:
                if await self._is_terminal(run_id):
                    return
                await asyncio.wait({future}, timeout=1.0)
            finally:
                waiters = self._waiters.get(run_id, [])
                if future in waiters:
                    waiters.remove(future)
                if not waiters:
                    self._waiters.pop(run_id, None)

    def _wake(self, run_id: str) -> None:
        for future in self._waiters.pop(run_id, []):
            if not future.done():
                future.set_result(None)

    async def _is_terminal(self, run_id: str) -> bool:
        async with self._db.read_session() as session:
            status = await run_lifecycle.run_status(session, run_id)
        return status is None or status in TERMINAL

    async def _hand_back(self, run_id: str, reason: str) -> None:
        try:
            async with self._db.transaction() as conn:
                await run_lifecycle.hand_back(conn, run_id, job_id=None, reason=reason, reschedule=None)
        except Exception:
            log.exception("run %s could not be handed back; the next start recovers it", run_id)

    async def stop(self) -> None:
        self._stopping = True
        drainers = list(self._drainers.values())
        if drainers:
            _, pending = await asyncio.wait(drainers, timeout=self._grace)
            if pending:
                log.warning(
                    "interrupting %d runs still in progress after %.0fs", len(self._controls), self._grace
                )
                for control in list(self._controls.values()):
                    control.interrupt("shutdown")
                await asyncio.wait(pending, timeout=self._grace)
