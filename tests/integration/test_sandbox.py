"""The tool sandbox, with real worker processes: results, failures of every kind, isolation, clean-up."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agenthost.tools.sandbox import Sandbox, SandboxResult
from agenthost.tools.sandbox._process import OUTPUT_LIMIT, WORKER_SCRIPT

TIMEOUT_S = 2.0

TOOLS = """
import asyncio
import ctypes
import json
import os
import sys
import subprocess
import sys


def add(x: int, y: int = 2) -> dict:
    return {"sum": x + y}


def echo(text: str) -> str:
    return text


def nothing() -> None:
    pass


def unserializable():
    return {1, 2}


def chatty():
    print("to stdout")
    print("to stderr", file=sys.stderr)
    return "done"


def flood():
    sys.stdout.write("x" * (1024 * 1024))
    return "flooded"


def fail(value: str):
    raise ValueError(f"bad input: {value}")


def forever():
    while True:
        pass


def sleeper():
    # Blocked in a system call rather than spinning: only the kill ends it.
    import time
    time.sleep(3600)


def hog():
    chunks = []
    while True:
        chunks.append(bytearray(4 * 2**30))


def hog_slowly():
    chunks = []
    while True:
        chunks.append(bytearray(64 * 2**20))


def leave():
    print("leaving")
    os._exit(3)


def segfault():
    ctypes.string_at(0)


def environment() -> dict:
    return dict(os.environ)


def where() -> dict:
    return {"cwd": os.getcwd(), "pid": os.getpid(), "home": os.environ["HOME"]}


def spawn_child() -> int:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    return child.pid


def annotation_type(x: int) -> str:
    return type(annotation_type.__annotations__["x"]).__name__


def open_fds() -> list:
    # The channel to the server, and the descriptor listdir itself opens, besides stdin/out/err.
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


def uses_site_packages() -> str:
    import httpx
    return httpx.__name__


async def later(n: int) -> int:
    await asyncio.sleep(0.01)
    return n * 2
"""


async def wait_for(predicate: Callable[[], bool], *, within_s: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` without blocking the event loop; fail at the deadline."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def worker_pids() -> set[int]:
    """This test process's sandbox workers (its children running the worker script)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and str(WORKER_SCRIPT).encode() in cmdline:
            pids.add(int(entry.name))
    return pids


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(pool_size=2, timeout_s=TIMEOUT_S, memory_mb=256)
    await box.start()
    yield box
    await box.close()


async def call(
    box: Sandbox, name: str, args: dict[str, object] | None = None, *, timeout_s: float | None = None
) -> SandboxResult:
    return await box.run(TOOLS, name, args or {}, {}, timeout_s=timeout_s)


async def test_returns_the_value(sandbox: Sandbox) -> None:
    assert await call(sandbox, "add", {"x": 1}) == SandboxResult("success", '{"sum": 3}', [], [])
    assert (await call(sandbox, "echo", {"text": "héllo"})).func_return == "héllo"
    assert (await call(sandbox, "nothing")).func_return == "null"
    assert (await call(sandbox, "unserializable")).func_return == "{1, 2}"
    assert (await call(sandbox, "later", {"n": 21})).func_return == "42"
    # Compiled as written: not under the worker's own `from __future__ import annotations`.
    assert (await call(sandbox, "annotation_type", {"x": 1})).func_return == "type"


async def test_captures_stdout_and_stderr(sandbox: Sandbox) -> None:
    result = await call(sandbox, "chatty")
    assert result == SandboxResult("success", "done", ["to stdout\n"], ["to stderr\n"])


async def test_caps_captured_output(sandbox: Sandbox) -> None:
    result = await call(sandbox, "flood")
    assert result.status == "success"
    assert result.func_return == "flooded"
    (text,) = result.stdout
    assert text.startswith("x" * OUTPUT_LIMIT)
    assert text.endswith(f"[... {1024 * 1024 - OUTPUT_LIMIT} more bytes of output not captured]")


async def test_exception_is_an_error_result(sandbox: Sandbox) -> None:
    result = await call(sandbox, "fail", {"value": "42"})
    assert result.status == "error"
    assert result.func_return == "ValueError: bad input: 42"
    (trace,) = result.stderr
    assert 'File "tool.py", line' in trace
    assert "in fail" in trace
    assert "_worker.py" not in trace


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("missing", {}, "the tool's source code defines no function named 'missing'"),
        ("add", {"z": 1}, "TypeError: add() got an unexpected keyword argument 'z'"),
    ],
)
async def test_bad_calls_are_error_results(
    sandbox: Sandbox, name: str, args: dict[str, object], expected: str
) -> None:
    result = await call(sandbox, name, args)
    assert (result.status, result.func_return) == ("error", expected)


async def test_syntax_error_is_an_error_result(sandbox: Sandbox) -> None:
    result = await sandbox.run("def broken(:\n    pass\n", "broken", {}, {})
    assert result.status == "error"
    assert result.func_return.startswith("SyntaxError: ")


async def test_timeout_kills_the_tool_while_another_call_completes(sandbox: Sandbox) -> None:
    started = time.monotonic()
    looping = asyncio.create_task(call(sandbox, "forever", timeout_s=1.0))
    quick = await call(sandbox, "add", {"x": 40})
    assert quick.func_return == '{"sum": 42}'
    assert not looping.done()
    result = await looping
    elapsed = time.monotonic() - started
    assert result.status == "error"
    assert result.func_return == "the tool ran longer than 1 s and was killed"
    # About the timeout: killed at the deadline, not after the sandbox's default (2 s) or later.
    assert 1.0 <= elapsed < TIMEOUT_S + 1.0


async def test_memory_hog_is_an_error_result(sandbox: Sandbox) -> None:
    for name in ("hog", "hog_slowly"):
        result = await call(sandbox, name)
        assert result.status == "error", name
        assert result.func_return == "MemoryError: the tool exceeded its memory limit of 256 MB"
        assert "MemoryError" in result.stderr[0]
    # The server side is unharmed and the next call runs normally.
    assert (await call(sandbox, "add", {"x": 1})).status == "success"


async def test_memory_limit_per_call(sandbox: Sandbox) -> None:
    source = "def big():\n    return len(bytearray(300 * 2**20))\n"
    assert (await sandbox.run(source, "big", {}, {})).status == "error"
    assert await sandbox.run(source, "big", {}, {}, memory_mb=1024) == SandboxResult(
        "success", str(300 * 2**20), [], []
    )


async def test_exit_and_segfault_are_error_results(sandbox: Sandbox) -> None:
    left = await call(sandbox, "leave")
    assert left == SandboxResult(
        "error", "the tool's process exited with code 3 before returning", ["leaving\n"], []
    )
    crashed = await call(sandbox, "segfault")
    assert crashed.status == "error"
    assert crashed.func_return == "the tool's process died from SIGSEGV (Segmentation fault) before returning"
    assert "in segfault" in crashed.stderr[0]  # faulthandler's traceback


@pytest.mark.parametrize("pool_size", [0, 2])
async def test_tool_sees_only_the_call_environment(monkeypatch: pytest.MonkeyPatch, pool_size: int) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("AGENTHOST_SECRET", "hush")
    monkeypatch.setenv("PYTHONPATH", "/nowhere")
    box = Sandbox(pool_size=pool_size, timeout_s=TIMEOUT_S)
    await box.start()
    try:
        result = await box.run(TOOLS, "environment", {}, {"WEATHER_API_KEY": "w-123", "LANG": "en_US.UTF-8"})
        second = await box.run(TOOLS, "environment", {}, {})
    finally:
        await box.close()
    assert result.status == "success"
    seen = json.loads(result.func_return)
    assert seen["WEATHER_API_KEY"] == "w-123"
    assert seen["LANG"] == "en_US.UTF-8"
    assert set(seen) <= {"PATH", "HOME", "TMPDIR", "LANG", "WEATHER_API_KEY"}
    assert "sk-test-secret" not in result.func_return
    assert "hush" not in result.func_return
    # One call's variables do not reach the next call.
    assert "WEATHER_API_KEY" not in second.func_return


async def test_runs_in_a_fresh_directory_removed_afterwards(sandbox: Sandbox) -> None:
    first = await call(sandbox, "where")
    second = await call(sandbox, "where")
    one, two = (json.loads(result.func_return) for result in (first, second))
    assert one["cwd"] != two["cwd"]
    assert one["pid"] != two["pid"]
    assert one["home"] == one["cwd"]
    await wait_for(lambda: not Path(one["cwd"]).exists(), what="the working directory to be removed")
    assert one["pid"] != os.getpid()


async def test_tool_inherits_no_stray_descriptors(sandbox: Sandbox) -> None:
    fds = json.loads((await call(sandbox, "open_fds")).func_return)
    assert fds[:3] == [0, 1, 2]
    assert len(fds) == 5


async def test_tool_can_import_installed_packages(sandbox: Sandbox) -> None:
    assert (await call(sandbox, "uses_site_packages")).func_return == "httpx"


async def test_concurrent_calls(sandbox: Sandbox) -> None:
    results = await asyncio.gather(*(call(sandbox, "add", {"x": n, "y": n}) for n in range(12)))
    assert [result.func_return for result in results] == [f'{{"sum": {2 * n}}}' for n in range(12)]


async def test_children_of_the_tool_are_killed(sandbox: Sandbox) -> None:
    result = await call(sandbox, "spawn_child")
    assert result.status == "success"
    child = int(result.func_return)
    await wait_for(lambda: not alive(child), what=f"the tool's child {child} to be killed")


async def test_cancellation_kills_the_worker_and_reraises(sandbox: Sandbox) -> None:
    task = asyncio.create_task(call(sandbox, "sleeper", timeout_s=30.0))
    await wait_for(lambda: len(sandbox._busy) == 1, what="a busy worker")
    (worker,) = sandbox._busy
    await wait_for(worker.ready.done, what="the worker to take its job")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: not alive(worker.pid), what=f"worker {worker.pid} to be killed")
    assert (await call(sandbox, "add", {"x": 1})).status == "success"


async def test_no_worker_lingers_after_close() -> None:
    others = worker_pids()  # workers of servers other tests left running in this process
    box = Sandbox(pool_size=3, timeout_s=30.0)
    await box.start()
    assert len(worker_pids() - others) >= 3
    running = asyncio.create_task(box.run(TOOLS, "sleeper", {}, {}))
    await wait_for(lambda: len(box._busy) == 1, what="a busy worker")
    pids = worker_pids() - others
    await box.close()
    assert not any(alive(pid) for pid in pids)
    assert worker_pids() - others == set()
    result = await running
    assert result.status == "error"
    assert result.func_return == "the tool was killed because the tool sandbox shut down"
    after = await box.run(TOOLS, "add", {"x": 1}, {})
    assert (after.status, after.func_return) == ("error", "the tool sandbox is shut down")


async def test_pool_refills_while_a_call_runs_long() -> None:
    box = Sandbox(pool_size=1, timeout_s=30.0)
    await box.start()
    try:
        (first,) = box._idle
        running = asyncio.create_task(box.run(TOOLS, "sleeper", {}, {}))
        await wait_for(
            lambda: len(box._idle) == 1 and box._idle[0] is not first and box._idle[0].ready.done(),
            what="a warm replacement in the pool",
        )
        # The next call takes the replacement instead of starting a process of its own.
        replacement = box._idle[0]
        where = json.loads((await box.run(TOOLS, "where", {}, {})).func_return)
        assert where["pid"] == replacement.pid
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    finally:
        await box.close()


async def test_without_a_pool() -> None:
    others = worker_pids()  # workers of servers other tests left running in this process
    box = Sandbox(pool_size=0, timeout_s=TIMEOUT_S)
    await box.start()
    try:
        assert worker_pids() - others == set()
        assert (await box.run(TOOLS, "add", {"x": 2}, {})).func_return == '{"sum": 4}'
    finally:
        await box.close()
    assert worker_pids() - others == set()


async def test_arguments_that_are_not_json(sandbox: Sandbox) -> None:
    result = await sandbox.run(TOOLS, "echo", {"text": object()}, {})
    assert result.status == "error"
    assert result.func_return.startswith("the tool's arguments cannot be sent as JSON")


SERVER_THAT_DIES = """
import asyncio, os, sys
from agenthost.tools.sandbox import Sandbox

async def main():
    box = Sandbox(pool_size=1, timeout_s=60.0)
    await box.start()
    task = asyncio.create_task(box.run(sys.argv[1], "sleeper", {}, {}))
    while not box._busy:
        await asyncio.sleep(0.01)
    (worker,) = box._busy
    await worker.ready
    print(worker.pid, *(idle.pid for idle in box._idle), flush=True)
    await task

asyncio.run(main())
"""


async def test_workers_do_not_outlive_a_killed_server(tmp_path: Path) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER_THAT_DIES,
        TOOLS,
        stdout=asyncio.subprocess.PIPE,
        # A killed server cannot remove its workers' directories: keep them under tmp_path.
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert server.stdout is not None
    line = await asyncio.wait_for(server.stdout.readline(), 30.0)
    pids = [int(pid) for pid in line.split()]
    assert pids and all(alive(pid) for pid in pids)
    server.kill()
    await server.wait()
    await wait_for(lambda: not any(alive(pid) for pid in pids), what=f"workers {pids} to die with the server")


async def test_under_uvloop_in_another_thread() -> None:
    """The server runs on uvloop (uvicorn's default), in the main thread or, in tests, in another one."""
    uvloop = pytest.importorskip("uvloop")

    others = worker_pids()  # workers of servers other tests left running in this process

    async def scenario() -> list[str]:
        box = Sandbox(pool_size=1, timeout_s=1.0)
        await box.start()
        try:
            results = await asyncio.gather(
                box.run(TOOLS, "chatty", {}, {}),
                box.run(TOOLS, "forever", {}, {}),
                box.run(TOOLS, "segfault", {}, {}),
                box.run(TOOLS, "later", {"n": 2}, {}),
                box.run(TOOLS, "open_fds", {}, {}),
            )
            cancelled = asyncio.create_task(box.run(TOOLS, "sleeper", {}, {}, timeout_s=30.0))
            await wait_for(lambda: len(box._busy) == 1)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
        finally:
            await box.close()
        assert worker_pids() - others == set()
        return [result.func_return for result in results]

    returns = await asyncio.to_thread(uvloop.run, scenario())
    assert returns == [
        "done",
        "the tool ran longer than 1 s and was killed",
        "the tool's process died from SIGSEGV (Segmentation fault) before returning",
        "4",
        returns[4],
    ]
    # uvloop leaves extra copies of stdout/stderr in the child; the worker closes them.
    assert len(json.loads(returns[4])) == 5
