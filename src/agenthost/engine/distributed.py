"""The distributed engine: runs are procrastinate jobs on PostgreSQL, executed by worker processes.

API servers defer a job per run in the run's own transaction (``engine/jobs.py``) and keep no run
state; any number of workers (``agenthost worker``, or the worker inside ``agenthost serve`` unless
``--no-worker``) on any number of hosts execute them, one at a time per agent (procrastinate's job
lock), in order. Cancellation aborts the job wherever it runs: a queued job is cancelled at once, a
running one has its coroutine cancelled, and procrastinate keeps the agent's lock until it exits.

Workers write heartbeats. Each worker also runs a reaper: the jobs of a worker silent for
``stalled_after_s`` are handed back (``db/run_lifecycle.py``): re-queued, or failed with a reason.
A worker that shuts down waits ``shutdown_grace_s`` for its runs, then hands back what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from procrastinate import JobContext
from procrastinate.exceptions import ProcrastinateException
from procrastinate.jobs import Status
from procrastinate.manager import JobManager
from procrastinate.middleware import AsyncCallNext
from procrastinate.worker import Worker

from agenthost.agent.control import RunControl
from agenthost.agent.loop import AgentLoop
from agenthost.agent.persistence import Committed
from agenthost.db import run_jobs, run_lifecycle
from agenthost.db.database import Database, Session
from agenthost.db.run_lifecycle import TERMINAL
from agenthost.engine.base import RunEngine
from agenthost.engine.jobs import HANDBACK_PRIORITY, QUEUE, TASK_NAME, defer_run, ensure_schema, new_app
from agenthost.settings import Settings
from agenthost.thread import Thread

log = logging.getLogger(__name__)

_SHUTDOWN = "the worker executing this run shut down before it finished"
_INTERNAL = "the worker executing this run hit an internal error (see its log)"
_HAND_BACK_RETRIES = (0.2, 1.0, None)
_ANALYZE_EVERY_S = 60.0
# A worker that stopped on its own is started again after a pause that doubles while it keeps stopping
# quickly (the database is still away), from the minimum again once it ran for a while.
_RESTART_MIN_S = 0.5
_RESTART_MAX_S = 10.0
_RESTART_RESET_S = 60.0


async def _wake_after_job(call_next: AsyncCallNext, context: JobContext, worker: Worker) -> Any:
    """Have the worker look for a job again as soon as this one is finished.

    procrastinate fetches on a new job's notification, when a slot frees while it is still fetching,
    or at the next poll; nothing wakes an idle worker when a job releases its lock. The agent's next
    run then waited for the poll (``worker_poll_interval_s``). The job's task ends after procrastinate
    recorded its end, so the fetch this wakes can take the agent's next run. (``_new_job_event`` is
    what procrastinate's own notification handler sets; its version is pinned.)
    """
    task = asyncio.current_task()
    event = getattr(worker, "_new_job_event", None)
    if task is not None and isinstance(event, asyncio.Event):
        task.add_done_callback(lambda _task: event.set())
    return await call_next()


class _JobManager(JobManager):
    """procrastinate's job manager, with heartbeats that outlive a failed write.

    A heartbeat that raises (a dropped connection, a database away longer than the pool waits) ends
    procrastinate's heartbeat task for good, yet its worker goes on taking jobs: silent, it is presumed
    dead after ``stalled_after_s`` and its runs are handed back while it still executes them. (Its
    side-task monitor, which would stop the worker, returns as soon as the periodic deferrer does, at
    once when there are no periodic tasks: procrastinate 3.10.) A failed beat is logged; the next one
    tries again.
    """

    async def update_heartbeat(self, worker_id: int) -> None:
        try:
            await super().update_heartbeat(worker_id)
        except Exception:
            log.warning("writing the worker's heartbeat failed; trying again at the next beat", exc_info=True)


class DistributedEngine(RunEngine):
    def __init__(
        self,
        db: Database,
        settings: Settings,
        loop: AgentLoop,
        on_finished: Callable[[str], None],
        *,
        run_worker: bool,
        concurrency: int | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._loop = loop
        self._on_finished = on_finished
        self._run_worker = run_worker
        self._concurrency = concurrency or settings.worker_concurrency
        self._conninfo = settings.psycopg_conninfo()
        self._app = new_app(self._conninfo, pool_max=max(4, settings.db_pool_size // 2))
        self._app.job_manager = _JobManager(self._app.connector)
        self._worker: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._app.task(name=TASK_NAME, queue=QUEUE, pass_context=True)(self._execute)

    async def start(self) -> None:
        await ensure_schema(self._conninfo)
        await self._app.open_async()
        if not self._run_worker:
            return
        self._worker = asyncio.create_task(self._work_forever(), name="procrastinate-worker")
        self._reaper = asyncio.create_task(self._reap_forever(), name="run-reaper")

    async def _work_forever(self) -> None:
        """Run the procrastinate worker, and run it again should it stop on its own.

        procrastinate stops a worker when one of its side tasks fails: a heartbeat write that meets a
        dropped connection (a database restart), a listener that cannot reconnect. The process would
        live on executing nothing (its runs reaped by other workers). Restarted, it registers afresh.
        """
        s = self._settings
        delay = _RESTART_MIN_S
        while True:
            began = time.monotonic()
            try:
                await self._app.run_worker_async(
                    queues=[QUEUE],
                    name=self.name,
                    concurrency=self._concurrency,
                    fetch_job_polling_interval=s.worker_poll_interval_s,
                    abort_job_polling_interval=s.worker_poll_interval_s,
                    update_heartbeat_interval=s.heartbeat_interval_s,
                    stalled_worker_timeout=s.stalled_after_s,
                    shutdown_graceful_timeout=s.shutdown_grace_s,
                    install_signal_handlers=False,
                    # The run row is the record; a job is only the run's place in the queue.
                    delete_jobs="always",
                    worker_middleware=[_wake_after_job],
                )
                log.error("the run worker stopped on its own (see above); starting it again")
            except Exception:
                log.exception("the run worker failed; starting it again")
            if time.monotonic() - began > _RESTART_RESET_S:
                delay = _RESTART_MIN_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX_S)

    async def defer_in(self, session: Session, run_id: str, thread: Thread) -> None:
        await defer_run(session, run_id, thread)

    async def enqueue(self, run_id: str, thread: Thread) -> None:
        """Nothing to do: the job committed with the run (``defer_in``)."""

    async def interrupt(self, run_id: str) -> None:
        async with self._db.read_session() as session:
            job_id = await run_jobs.run_job_id(session, run_id)
        if job_id is None:
            return
        with contextlib.suppress(ProcrastinateException):  # the job already ended
            await self._app.job_manager.cancel_job_by_id_async(job_id, abort=True, delete_job=True)

    async def wait(self, run_id: str) -> None:
        # Any worker may end the run: poll its status, quickly at first.
        delay = 0.005
        while True:
            async with self._db.read_session() as session:
                status = await run_lifecycle.run_status(session, run_id)
            if status is None or status in TERMINAL:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._worker is not None:
            # Cancelling the worker asks it to stop: it waits for running jobs up to the grace
            # period, then cancels them; each cancelled run is handed back by `_execute`.
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._app.close_async()

    async def _execute(self, context: JobContext, run_id: str, agent_id: str) -> None:
        job_id = context.job.id
        try:
            await self._loop.execute(run_id, RunControl())
        except asyncio.CancelledError:
            # An abort (the run was cancelled: hand_back leaves it alone) or a shutdown past the grace
            # period (the run is still running, or not yet started: it goes back to the queue, or fails).
            await asyncio.shield(self._hand_back(run_id, job_id, _SHUTDOWN))
            raise
        except Exception:
            # The loop ends runs on their own failures; this is the database failing under it (the run
            # may still be `created` or `running`). Left as is, the failed job would strand the run.
            log.exception("run %s: execution failed outside the agent loop", run_id)
            await self._hand_back(run_id, job_id, _INTERNAL)
            raise

    async def _hand_back(self, run_id: str, job_id: int | None, reason: str) -> None:
        # A database that just failed under the run may answer again a moment later.
        for delay in _HAND_BACK_RETRIES:
            try:
                _outcome, committed = await self.hand_back(run_id, job_id, reason)
            except Exception:
                if delay is None:
                    log.exception("run %s could not be handed back; it stays as it is", run_id)
                    return
                await asyncio.sleep(delay)
                continue
            if committed is not None and committed.callback_pending:
                self._on_finished(run_id)
            return

    async def hand_back(
        self, run_id: str, job_id: int | None, reason: str
    ) -> tuple[run_lifecycle.HandBackOutcome, Committed | None]:
        """Re-queue (with a new job, ahead of the thread's queued runs) or fail a run whose execution
        stopped, if job ``job_id`` still holds it."""
        async with self._db.transaction() as conn:
            return await run_lifecycle.hand_back(
                conn, run_id, job_id=job_id, reason=reason, reschedule=_reschedule
            )

    async def _reap_forever(self) -> None:
        since_analyze = 0.0
        while True:
            await asyncio.sleep(self._settings.reaper_interval_s)
            try:
                await self.reap_once()
                since_analyze += self._settings.reaper_interval_s
                if since_analyze >= _ANALYZE_EVERY_S:
                    # Bulk defers leave the planner with stale statistics; fetches slow down without them.
                    since_analyze = 0.0
                    async with self._db.transaction() as conn:
                        await run_jobs.analyze_jobs(conn)
            except Exception:
                log.exception("reaping stalled runs failed; retrying")

    async def reap_once(self) -> int:
        """Hand back the runs of workers that stopped sending heartbeats; returns how many."""
        stalled_after = self._settings.stalled_after_s
        jobs = list(
            await self._app.job_manager.get_stalled_jobs(
                seconds_since_heartbeat=stalled_after, queue=QUEUE, task_name=TASK_NAME
            )
        )
        for job in jobs:
            run_id = str(job.task_kwargs["run_id"])
            reason = f"the worker executing this run stopped sending heartbeats for {stalled_after:g}s"
            outcome, committed = await self.hand_back(run_id, job.id, reason)
            if committed is not None and committed.callback_pending:
                self._on_finished(run_id)
            with contextlib.suppress(ProcrastinateException):
                await self._app.job_manager.finish_job(job, status=Status.FAILED, delete_job=True)
            log.warning("stalled job %s of run %s: %s", job.id, run_id, outcome)
        return len(jobs)


async def _reschedule(conn: run_lifecycle.Conn, run_id: str, thread: Thread) -> None:
    # A handed-back run outranks the runs queued behind it on its thread (same lock).
    await defer_run(conn, run_id, thread, priority=HANDBACK_PRIORITY)
