"""One single-use worker process, seen from the server: start it, hand it one job, read back what happened.

The mechanics only (process group, channel, captured output, clean-up); ``sandbox.py`` decides what an
outcome means to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKER_SCRIPT = Path(__file__).with_name("_worker.py")
# Each of stdout and stderr keeps at most this much; the rest is read and dropped so the tool never blocks.
OUTPUT_LIMIT = 64 * 1024
# The worker cuts func_return far below this; a longer answer is not the worker's (the tool forged it).
MESSAGE_LIMIT = 8 * 2**20
# After the worker has answered or died, how long its output pipes may take to reach end-of-file (a
# descendant that left the process group can hold them open).
DRAIN_GRACE_S = 1.0
# After the worker exited, how long its answer may take to arrive (it is already in the socket buffer).
ANSWER_GRACE_S = 0.5
# How long a worker may take to become warm. Not part of the tool's own timeout: a slow start is the
# server's doing (an overloaded host), not the tool's.
STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one call ended, before it is put into words."""

    answer: dict[str, str] | None  # the worker's result message, if it sent a well-formed one
    timed_out: bool  # the tool ran past its deadline
    start_timed_out: bool  # the worker did not become warm within STARTUP_TIMEOUT_S
    returncode: int | None  # None when the process was still running when it was killed
    stdout: str
    stderr: str


class _Capture:
    """Reads one output pipe to its end, keeping the first ``OUTPUT_LIMIT`` bytes."""

    def __init__(self, stream: asyncio.StreamReader | None) -> None:
        self._kept = bytearray()
        self._dropped = 0
        self._task = asyncio.create_task(self._drain(stream))

    async def _drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        with contextlib.suppress(ConnectionError):
            while chunk := await stream.read(1 << 16):
                room = OUTPUT_LIMIT - len(self._kept)
                if room > 0:
                    self._kept += chunk[:room]
                self._dropped += max(0, len(chunk) - max(room, 0))

    def cancel(self) -> None:
        self._task.cancel()

    async def finish(self) -> str:
        """The captured text, once the pipe is closed (or the grace period is over)."""
        _, pending = await asyncio.wait({self._task}, timeout=DRAIN_GRACE_S)
        for task in pending:
            task.cancel()
        text = self._kept.decode("utf-8", errors="replace")
        if self._dropped:
            text += f"\n[... {self._dropped} more bytes of output not captured]"
        return text


def _base_env(workdir: str) -> dict[str, str]:
    # Nothing of the server's environment but PATH: the tool gets the call's variables later, in the worker.
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        # glibc reserves 64 MiB of address space per arena; few arenas keep RLIMIT_AS meaningful.
        "MALLOC_ARENA_MAX": "2",
    }


def _remove_tree(path: str) -> None:
    def force(function: Callable[..., Any], target: str, _exc: Any) -> None:
        # A tool may leave read-only directories behind; make them writable and retry once.
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
            function(target)

    shutil.rmtree(path, onerror=force)


class WorkerProcess:
    """A started worker, used for at most one call and then killed with its whole process group."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        workdir: str,
    ) -> None:
        self.process = process
        self.workdir = workdir
        self._reader = reader
        self._writer = writer
        self._reaped: asyncio.Task[None] | None = None
        # Resolves to True once the worker has imported what it needs and waits for its job.
        self.ready: asyncio.Task[bool] = asyncio.create_task(self._await_ready())

    @classmethod
    async def spawn(cls) -> WorkerProcess:
        """Start a worker (raises OSError when the system cannot start a process)."""
        workdir = tempfile.mkdtemp(prefix="agenthost-tool-")
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",  # no PYTHON* variables, no user site, no script dir on sys.path; site-packages stay
                str(WORKER_SCRIPT),
                str(theirs.fileno()),
                str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=workdir,
                env=_base_env(workdir),
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # its own process group: one killpg ends it and its children
            )
        except BaseException:
            ours.close()
            _remove_tree(workdir)
            raise
        finally:
            theirs.close()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=ours)
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            ours.close()
            _remove_tree(workdir)
            raise
        return cls(process, reader, writer, workdir)

    @property
    def pid(self) -> int:
        return self.process.pid

    def usable(self) -> bool:
        """Still running, and not known to have failed its start-up."""
        if self.process.returncode is not None:
            return False
        return not (self.ready.done() and (self.ready.cancelled() or not self.ready.result()))

    def kill(self) -> None:
        """SIGKILL the worker's process group (the worker and whatever it started), at once."""
        # The group id is the worker's pid (its own session). While the group has members that id cannot
        # be reused; once it is empty, Linux hands pids out in increasing order up to pid_max, so no other
        # process gets it in the moments between the worker's exit and the last signal sent here.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def reap(self) -> asyncio.Task[None]:
        """Kill, wait for the exit and remove the working directory (one task, however often asked)."""
        if self._reaped is None:
            self._reaped = asyncio.create_task(self._reap())
        return self._reaped

    async def _reap(self) -> None:
        self.kill()
        await self.process.wait()
        self.ready.cancel()
        self._writer.close()
        # A tool may leave many files; removing them must not block the event loop.
        await asyncio.to_thread(_remove_tree, self.workdir)

    async def _await_ready(self) -> bool:
        try:
            return await self._reader.readexactly(1) == b"R"
        except (asyncio.IncompleteReadError, ConnectionError):
            return False

    async def _read_answer(self) -> dict[str, str] | None:
        try:
            (size,) = struct.unpack(">I", await self._reader.readexactly(4))
            if size > MESSAGE_LIMIT:
                return None
            answer = json.loads(await self._reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return None
        if (
            isinstance(answer, dict)
            and answer.get("status") in ("success", "error")
            and isinstance(answer.get("func_return"), str)
        ):
            return {"status": answer["status"], "func_return": answer["func_return"]}
        return None

    async def _wait_ready(self) -> bool | None:
        """True once warm, False if the worker died starting, None if it took too long."""
        # Not `await self.ready`: that would cancel the shared task on a timeout, and a reap cancelling it
        # would surface here as a CancelledError the caller never asked for.
        await asyncio.wait({self.ready}, timeout=STARTUP_TIMEOUT_S)
        if not self.ready.done():
            return None
        return not self.ready.cancelled() and self.ready.result()

    async def _exchange(self, job: bytes, exited: asyncio.Future[int]) -> dict[str, str] | None:
        try:
            self._writer.write(job)
            self._writer.write_eof()
            await self._writer.drain()
        except ConnectionError:
            return None
        reading = asyncio.ensure_future(self._read_answer())
        try:
            either: set[asyncio.Future[Any]] = {reading, exited}
            done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if reading not in done:
                # The worker is gone; what it sent is buffered, unless a forked child still holds the channel.
                await asyncio.wait({reading}, timeout=ANSWER_GRACE_S)
            return reading.result() if reading.done() else None
        finally:
            reading.cancel()

    async def call(self, job: bytes, timeout_s: float) -> Outcome:
        """Run ``job``, killing it after ``timeout_s`` (from the moment the worker is warm).

        The worker's process group is killed on return, whatever happened.
        """
        captures = (_Capture(self.process.stdout), _Capture(self.process.stderr))
        exited = asyncio.ensure_future(self.process.wait())
        answer: dict[str, str] | None = None
        timed_out = False
        try:
            ready = await self._wait_ready()
            if ready:
                try:
                    async with asyncio.timeout(timeout_s):
                        answer = await self._exchange(job, exited)
                        if answer is None:
                            # No answer: learn how the process ended (it may also have closed the channel
                            # and kept running, which the deadline covers).
                            await asyncio.shield(exited)
                except TimeoutError:
                    timed_out = True
            elif ready is False:
                # It died starting up: its exit status is on its way.
                await asyncio.wait({exited}, timeout=ANSWER_GRACE_S)
            self.kill()
            stdout, stderr = [await capture.finish() for capture in captures]
        except BaseException:
            self.kill()
            for capture in captures:
                capture.cancel()
            raise
        finally:
            exited.cancel()
        return Outcome(answer, timed_out, ready is None, self.process.returncode, stdout, stderr)
