"""The embedded engine: in-process, zero setup, the default.

Each lane (an agent's default thread, or a conversation) with queued runs gets one drainer task that
executes its runs strictly one after another, in the order they were enqueued; a semaphore bounds how
many lanes run at once. The database is the
source of truth: on start, runs a dead process left ``running`` are failed and ``created`` runs are
queued again in ``seq`` order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from sqlalchemy import func, select, update

from agenthost.agent.control import RunControl
from agenthost.agent.loop import AgentLoop
from agenthost.db.database import Database
from agenthost.db.rows import RunRow
from agenthost.db.types import utcnow
from agenthost.engine.base import RunEngine

log = logging.getLogger(__name__)

CRASH_REASON = "the server stopped while this run was in progress (recovered at start-up)"


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
        async with self._db.session() as session:
            crashed = (
                await session.execute(
                    update(RunRow)
                    .where(RunRow.status == "running")
                    .values(
                        status="failed",
                        stop_reason="error",
                        completed_at=utcnow(),
                        metadata_={"error": CRASH_REASON},
                        callback_pending=RunRow.callback_url.is_not(None),
                    )
                    .returning(RunRow.id)
                )
            ).all()
            if crashed:
                log.warning("failed %d runs left running by a previous process", len(crashed))
            queued = (
                await session.execute(
                    select(RunRow.id, func.coalesce(RunRow.conversation_id, RunRow.agent_id))
                    .where(RunRow.status == "created")
                    .order_by(RunRow.seq)
                )
            ).all()
        for run_id, lane in queued:
            await self.enqueue(run_id, lane)
        if queued:
            log.info("re-queued %d runs accepted before the last stop", len(queued))

    async def enqueue(self, run_id: str, lane: str) -> None:
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
                        log.exception("run %s escaped the loop's error handling", run_id)
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
            status = await session.scalar(select(RunRow.status).where(RunRow.id == run_id))
        return status is None or status in ("completed", "failed", "cancelled")

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
