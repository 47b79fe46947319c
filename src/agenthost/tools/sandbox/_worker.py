"""The tool worker: one process runs exactly one tool call, then exits.

The sandbox starts it as ``python -I _worker.py <fd> <server pid>`` (by path, so it imports nothing of
agenthost and stays cheap to start) with a minimal environment, in its own session and a fresh temporary
directory. ``<fd>`` is one end of a socket pair, the private channel to the server; the tool's stdout and
stderr are plain pipes the server reads, so whatever the tool prints can never be mistaken for the result.

Channel protocol: the worker sends ``b"R"`` once it is warm (everything below imported); the server
sends the job as JSON and shuts its side for writing; the worker answers with a 4-byte big-endian length
and a JSON object ``{"status": "success" | "error", "func_return": str}``, then exits at once.
Stdlib only: this file runs in the tool's interpreter, not the server's.
"""

from __future__ import annotations

import ctypes
import faulthandler
import io
import json
import linecache
import math
import os
import resource
import signal
import socket
import struct
import sys
import traceback
import types

# Not `typing.TYPE_CHECKING`: typing, asyncio and inspect are not imported at start-up, which halves the
# time a worker takes to get warm (asyncio is imported only when a tool returns an awaitable).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable
    from typing import Any

# The longest func_return sent back; the agent loop trims far more (tool_return_char_limit), this only
# keeps the channel bounded.
RETURN_LIMIT = 1_000_000
# The start-up variables a tool may keep seeing (the server sets them); everything else comes from the call.
KEEP_ENV = ("PATH", "HOME", "TMPDIR", "LANG")
TOOL_FILENAME = "tool.py"
TOOL_MODULE = "__tool__"
PR_SET_PDEATHSIG = 1
MAX_FD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024

# Released when the tool runs out of memory, so that reporting the MemoryError does not fail in turn.
_reserve: bytearray | None = bytearray(4 * 2**20)


def _receive_job(channel: socket.socket) -> dict[str, Any] | None:
    chunks = []
    while chunk := channel.recv(1 << 16):
        chunks.append(chunk)
    if not chunks:
        return None
    job: dict[str, Any] = json.loads(b"".join(chunks))
    return job


def _die_with_server(server_pid: int) -> None:
    # The server kills the process group at the deadline; should the server itself die first (even by
    # SIGKILL), the kernel ends this process rather than leave a tool running unwatched.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != server_pid:  # it died before the prctl
        os._exit(1)


def _set_limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    # The hard limit too, so the tool cannot raise it again.
    resource.setrlimit(kind, (value, value))


def _apply_limits(memory_mb: int, timeout_s: float) -> None:
    _set_limit(resource.RLIMIT_AS, memory_mb * 2**20)
    # A backstop only (the server kills the process group at the wall-clock deadline), loose enough that
    # a tool busy on every core is still ended by that deadline rather than by SIGXCPU.
    _set_limit(resource.RLIMIT_CPU, math.ceil(timeout_s * (os.cpu_count() or 1)) + 2)
    _set_limit(resource.RLIMIT_CORE, 0)


def _apply_env(env: dict[str, str]) -> None:
    kept = {key: os.environ[key] for key in KEEP_ENV if key in os.environ}
    os.environ.clear()
    os.environ.update(kept)
    os.environ.update(env)


def _render(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except Exception:
            text = repr(value)
    if len(text) > RETURN_LIMIT:
        text = f"{text[:RETURN_LIMIT]}... [{len(text) - RETURN_LIMIT} more characters cut]"
    return text


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _call(source_code: str, function_name: str, args: dict[str, Any]) -> tuple[str, str]:
    module = types.ModuleType(TOOL_MODULE)
    sys.modules[TOOL_MODULE] = module
    # Tracebacks and inspect.getsource() then show the tool's own lines.
    linecache.cache[TOOL_FILENAME] = (len(source_code), None, source_code.splitlines(True), TOOL_FILENAME)
    # dont_inherit: the tool must not be compiled under this file's `from __future__ import annotations`.
    exec(compile(source_code, TOOL_FILENAME, "exec", dont_inherit=True), module.__dict__)
    function = module.__dict__.get(function_name)
    if not callable(function):
        return "error", f"the tool's source code defines no function named {function_name!r}"
    value = function(**args)
    if hasattr(value, "__await__"):  # an async def tool
        import asyncio

        value = asyncio.run(_await(value))
    return "success", _render(value)


def _describe(exc: BaseException, memory_mb: int) -> str:
    if isinstance(exc, MemoryError):
        return f"MemoryError: the tool exceeded its memory limit of {memory_mb} MB"
    try:
        detail = str(exc)
    except Exception:
        detail = ""
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name


def _print_traceback(exc: BaseException) -> None:
    # Start at the tool's first frame: the worker's own frames (and asyncio.run's) say nothing to its author.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != TOOL_FILENAME:
        tb = tb.tb_next
    try:
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    except Exception:
        pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def _close_output() -> None:
    # The server then sees end-of-file on the output pipes as soon as the answer arrives, instead of
    # waiting for this process to die (children of the tool still holding them are killed with it).
    _flush()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    except OSError:
        pass


def _warm_up() -> None:
    # The first compile() and call fault in the parser, compiler and eval loop (about 2 ms); do that
    # before announcing readiness, not in the call.
    source = 'import os\n\ndef _f(a: int, b: str = "x") -> dict:\n    """Doc."""\n    return {"a": [a, b]}\n'
    namespace: dict[str, Any] = {}
    exec(compile(source, "<warm-up>", "exec", dont_inherit=True), namespace)
    json.loads(json.dumps(namespace["_f"](a=1)))


def main() -> None:
    """Announce readiness, take one job, run it, answer, and exit."""
    global _reserve
    channel_fd = int(sys.argv[1])
    # Only stdin, stdout, stderr and the channel: some event loops (uvloop) leave extra copies of the
    # stdout/stderr ends in the child, which would delay end-of-file and reach the tool.
    os.closerange(3, channel_fd)
    os.closerange(channel_fd + 1, MAX_FD)
    channel = socket.socket(fileno=channel_fd)
    _die_with_server(int(sys.argv[2]))
    # Keep the channel out of any process the tool starts.
    os.set_inheritable(channel.fileno(), False)
    sys.argv = [TOOL_FILENAME]
    # A segfault in the tool then leaves its Python traceback in the captured stderr.
    faulthandler.enable()
    # A tool that prints and then crashes should still have its lines captured.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    _warm_up()
    channel.sendall(b"R")
    job = _receive_job(channel)
    if job is None:  # the server let this worker go unused (it shut down)
        os._exit(0)
    memory_mb = int(job["memory_mb"])
    try:
        _apply_limits(memory_mb, float(job["timeout_s"]))
        _apply_env(job["env"])
        status, func_return = _call(job["source_code"], job["function_name"], job["args"])
    except BaseException as exc:
        _reserve = None
        status, func_return = "error", _describe(exc, memory_mb)
        _print_traceback(exc)
        del exc
    _close_output()
    payload = json.dumps({"status": status, "func_return": func_return}).encode()
    channel.sendall(struct.pack(">I", len(payload)) + payload)
    # Skip interpreter shutdown: threads or atexit hooks the tool left behind must not delay the answer.
    os._exit(0)


if __name__ == "__main__":
    main()
