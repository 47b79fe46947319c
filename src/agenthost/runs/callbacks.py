"""Callbacks: POST a run's outcome to its ``callback_url`` once it is terminal.

Delivery is durable: the terminal transition sets ``callback_pending`` in the same transaction. The
process that ended the run delivers it under a lease (``callback_lease_until``, renewed before each
attempt), and every process sweeps for pending callbacks whose lease has run out (at start, then every
``callback_sweep_interval_s``): a callback a dead process did not deliver is sent by another, while one
being delivered is left to its deliverer. Delivery is at least once: a process that dies after a POST
but before recording it leaves the callback to be sent again. Connection errors and 5xx answers are
retried with backoff for a bounded time; 4xx answers are final. A failing callback never changes the
run itself, only its ``callback_*`` fields. With a signing secret configured, each POST carries
``X-Agenthost-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from datetime import timedelta
from typing import Any

import httpx

from agenthost.db import callbacks as callbacks_db
from agenthost.db import runs as runs_db
from agenthost.db.database import Database
from agenthost.db.types import utcnow
from agenthost.runs.results import run_result
from agenthost.settings import Settings

log = logging.getLogger(__name__)

# A lease outlasts the attempt it covers (the POST's timeout) by this much.
_LEASE_MARGIN_S = 10.0
_SWEEP_BATCH = 500


class CallbackDispatcher:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._http = httpx.AsyncClient(timeout=settings.callback_timeout_s, follow_redirects=False)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        secret = settings.callback_signing_secret
        self._secret = secret.get_secret_value().encode() if secret is not None else None

    def notify(self, run_id: str) -> None:
        """Deliver in the background; the caller has already committed the terminal status."""
        task = asyncio.create_task(self._deliver(run_id), name=f"callback:{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Send what is pending now, then keep sweeping in the background."""
        await self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="callback-sweeper")

    async def sweep(self) -> int:
        """Start delivering every pending callback nobody holds a lease on; returns how many."""
        async with self._db.read_session() as session:
            ids = await callbacks_db.unleased_callbacks(session, utcnow(), _SWEEP_BATCH)
        for run_id in ids:
            self.notify(run_id)
        return len(ids)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.callback_sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweeping for pending callbacks failed; retrying")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self._http.aclose()

    async def _lease(self, run_id: str, seconds: float, *, claim: bool) -> bool:
        """Take (``claim``: only if nobody holds it) or extend the lease on the run's callback."""
        now = utcnow()
        until = now + timedelta(seconds=seconds + self._settings.callback_timeout_s + _LEASE_MARGIN_S)
        async with self._db.transaction() as conn:
            if claim:
                return await callbacks_db.claim_lease(conn, run_id, now, until)
            await callbacks_db.extend_lease(conn, run_id, until)
            return True

    async def _deliver(self, run_id: str) -> None:
        try:
            if not await self._lease(run_id, 0, claim=True):
                return  # delivered already, or being delivered by its lease holder
            async with self._db.session() as session:
                run = await runs_db.find_run_record(session, run_id)
                if run is None or not run.callback_pending or run.callback_url is None:
                    return
                url = run.callback_url
                result = await run_result(session, run)
                payload: dict[str, Any] = {
                    "run_id": run.id,
                    "agent_id": run.agent_id,
                    "status": run.status,
                    "stop_reason": run.stop_reason,
                    "completed_at": run.completed_at.isoformat() if run.completed_at else None,
                    "metadata": {**(run.metadata or {}), "result": result.model_dump(mode="json")},
                }
            body = json.dumps(payload, separators=(",", ":")).encode()
            await self._post_with_retries(run_id, url, body)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("callback delivery for run %s failed unexpectedly", run_id)

    async def _post_with_retries(self, run_id: str, url: str, body: bytes) -> None:
        deadline = time.monotonic() + self._settings.callback_retry_window_s
        attempt = 0
        while True:
            status: int | None = None
            error: str | None = None
            try:
                response = await self._http.post(url, content=body, headers=self._headers(run_id, body))
                status = response.status_code
                if status >= 400:
                    error = f"callback endpoint answered HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            retry = (status is None or status >= 500) and error is not None
            delay = self._settings.callback_retry_base_delay_s * (2**attempt) * (0.8 + 0.4 * random.random())
            final = not retry or time.monotonic() + delay > deadline
            await self._record(run_id, status, error, final=final)
            if final:
                if error:
                    log.warning("callback for run %s to %s failed: %s", run_id, url, error)
                return
            attempt += 1
            await self._lease(run_id, delay, claim=False)
            await asyncio.sleep(delay)

    def _headers(self, run_id: str, body: bytes) -> dict[str, str]:
        headers = {"content-type": "application/json", "x-agenthost-run-id": run_id}
        if self._secret is not None:
            ts = str(int(time.time()))
            mac = hmac.new(self._secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers["x-agenthost-signature"] = f"t={ts},v1={mac}"
        return headers

    async def _record(self, run_id: str, status: int | None, error: str | None, *, final: bool) -> None:
        async with self._db.session() as session:
            await callbacks_db.record_attempt(session, run_id, status, error, final=final)
