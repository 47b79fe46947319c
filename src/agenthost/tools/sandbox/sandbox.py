"""The sandbox: runs a user's Python tool in a separate, single-use process and reports what happened."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import signal
from dataclasses import dataclass
from typing import Any, Literal

from agenthost.tools.sandbox._process import STARTUP_TIMEOUT_S, Outcome, WorkerProcess

logger = logging.getLogger(__name__)

# How long start() waits for the pre-warmed workers to finish importing.
WARM_UP_TIMEOUT_S = 30.0
# When a call still runs after this long, its replacement in the pool starts without waiting for its end.
REFILL_DELAY_S = 0.05


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What one tool call produced (the fields of Letta's ToolExecutionResult that a sandbox fills).

    ``stdout`` and ``stderr`` hold the captured text as one string each (an empty list when the tool
    printed nothing), at most 64 KiB each with a note when more was dropped.
    """

    status: Literal["success", "error"]
    func_return: str
    stdout: list[str]
    stderr: list[str]


def _error(message: str, stdout: str = "", stderr: str = "") -> SandboxResult:
    return SandboxResult("error", message, _lines(stdout), _lines(stderr))


def _lines(text: str) -> list[str]:
    return [text] if text else []


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


class Sandbox:
    """Runs custom tools, each call in a fresh process of the server's interpreter.

    The process starts in its own session with a minimal environment (PATH, LANG, HOME and TMPDIR pointing
    at a temporary working directory removed afterwards) and sees, besides those, only the variables
    passed for the call. Its address space is capped (RLIMIT_AS) and its whole process group is killed at
    the deadline. Whatever goes wrong in the tool (exception, timeout, crash, running out of memory) comes
    back as a result with status "error", never as an exception.

    ``pool_size`` processes are kept started and warm, each for exactly one call; a call that finds the
    pool empty starts its own process rather than wait. ``pool_size=0`` keeps none.
    """

    def __init__(self, *, pool_size: int = 2, timeout_s: float = 60.0, memory_mb: int = 512) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size!r}")
        _positive("timeout_s", timeout_s)
        _positive("memory_mb", memory_mb)
        self._pool_size = pool_size
        self._timeout_s = timeout_s
        self._memory_mb = memory_mb
        self._idle: collections.deque[WorkerProcess] = collections.deque()
        self._busy: set[WorkerProcess] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Start the pool and wait (a bounded time) until its processes are warm."""
        self._refill()
        if self._spawning:
            await asyncio.wait(set(self._spawning))
        if self._idle:
            await asyncio.wait({worker.ready for worker in self._idle}, timeout=WARM_UP_TIMEOUT_S)
        for worker in list(self._idle):
            if not worker.usable():
                logger.warning("a sandbox worker (pid %d) failed to start", worker.pid)
                self._idle.remove(worker)
                self._reap(worker)

    async def close(self) -> None:
        """Kill the idle workers and any call still running, and wait until their processes are gone."""
        self._closed = True
        if self._spawning:
            await asyncio.wait(set(self._spawning))
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        for worker in workers:
            self._reap(worker)
        if self._reaping:
            await asyncio.wait(set(self._reaping))

    async def run(
        self,
        source_code: str,
        function_name: str,
        args: dict[str, Any],
        env: dict[str, str],
        *,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
    ) -> SandboxResult:
        """Call ``function_name`` (defined by ``source_code``) with ``args`` as keyword arguments.

        ``env`` is the whole environment the tool sees besides PATH, LANG, HOME and TMPDIR. ``timeout_s``
        and ``memory_mb`` override the sandbox's defaults for this call. Cancelling the awaiting task kills
        the process and re-raises.
        """
        timeout = self._timeout_s if timeout_s is None else timeout_s
        memory = self._memory_mb if memory_mb is None else memory_mb
        _positive("timeout_s", timeout)
        _positive("memory_mb", memory)
        if self._closed:
            return _error("the tool sandbox is shut down")
        try:
            job = json.dumps(
                {
                    "source_code": source_code,
                    "function_name": function_name,
                    "args": args,
                    "env": env,
                    "timeout_s": timeout,
                    "memory_mb": memory,
                }
            ).encode()
        except (TypeError, ValueError) as exc:
            return _error(f"the tool's arguments cannot be sent as JSON: {exc}")
        worker = self._take()
        if worker is None:
            try:
                worker = await WorkerProcess.spawn()
            except OSError as exc:
                return _error(f"could not start a process for the tool: {exc}")
            if self._closed:
                self._reap(worker)
                return _error("the tool sandbox is shut down")
        self._busy.add(worker)
        # Replace the worker once the call is over, or a little later if it runs long: a replacement starting
        # at once would take CPU from a short call (and a trivial call takes ~3 ms, a start ~50 ms of CPU).
        refill_later = asyncio.get_running_loop().call_later(REFILL_DELAY_S, self._refill)
        try:
            outcome = await worker.call(job, timeout)
        finally:
            refill_later.cancel()
            self._busy.discard(worker)
            self._reap(worker)
            self._refill()
        return self._result(outcome, timeout)

    def _result(self, outcome: Outcome, timeout_s: float) -> SandboxResult:
        if outcome.answer is not None:
            status: Literal["success", "error"] = (
                "success" if outcome.answer["status"] == "success" else "error"
            )
            return SandboxResult(
                status, outcome.answer["func_return"], _lines(outcome.stdout), _lines(outcome.stderr)
            )
        if outcome.timed_out:
            message = f"the tool ran longer than {timeout_s:g} s and was killed"
        elif outcome.start_timed_out:
            message = f"the tool's process did not start within {STARTUP_TIMEOUT_S:g} s (server overloaded?)"
        elif self._closed:
            message = "the tool was killed because the tool sandbox shut down"
        elif outcome.returncode is not None and outcome.returncode < 0:
            number = -outcome.returncode
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            description = signal.strsignal(number) or name
            message = f"the tool's process died from {name} ({description}) before returning"
        else:
            message = f"the tool's process exited with code {outcome.returncode} before returning"
        return _error(message, outcome.stdout, outcome.stderr)

    def _take(self) -> WorkerProcess | None:
        worker = None
        while self._idle:
            candidate = self._idle.popleft()
            if candidate.usable():
                worker = candidate
                break
            self._reap(candidate)
        return worker

    def _refill(self) -> None:
        if self._closed:
            return
        for _ in range(self._pool_size - len(self._idle) - len(self._spawning)):
            task = asyncio.create_task(self._spawn_idle())
            self._spawning.add(task)
            task.add_done_callback(self._spawning.discard)

    async def _spawn_idle(self) -> None:
        try:
            worker = await WorkerProcess.spawn()
        except OSError as exc:
            # The next call starts its own process (and reports the failure if that fails too).
            logger.warning("could not start a sandbox worker: %s", exc)
            return
        except Exception:
            logger.exception("could not start a sandbox worker")
            return
        if self._closed:
            self._reap(worker)
        else:
            self._idle.append(worker)

    def _reap(self, worker: WorkerProcess) -> None:
        task = worker.reap()
        if task not in self._reaping and not task.done():
            self._reaping.add(task)
            task.add_done_callback(self._reaping.discard)
