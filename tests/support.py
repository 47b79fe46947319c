"""Test harness: agenthost served over real HTTP (in a thread, or as a real subprocess), and waiting helpers.

Tests wait for observable states with a deadline; none sleeps for a fixed time hoping for a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from letta_client import APIStatusError, AsyncLetta, Letta
from letta_client.types.agents.message_create_async_params import ClientTool
from letta_client.types.agents.run import Run

from agenthost.app import create_app
from agenthost.settings import Settings
from tests.fakes.fake_llm import FakeLLM

REPO = Path(__file__).resolve().parent.parent
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
TERMINAL = ("completed", "failed", "cancelled")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_model_unavailable() -> str | None:
    """Why the real local model cannot run here, or None when it can: not installed, or a CPU without
    the instructions its runtime was built for (the server refuses such a CPU clearly, and
    tests/unit/test_local_cpu.py covers that refusal)."""
    from agenthost.llm.local import local_client
    from agenthost.llm.local.cpu import missing_cpu_features

    if local_client(Settings(local_model="on")) is None:
        return "the local model is not installed (pip install 'agenthost[local-llm]')"
    if missing := missing_cpu_features():
        return f"this CPU lacks {', '.join(missing)}, which the local model's runtime needs"
    return None


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def wait_for_run(
    client: Letta, run_id: str, *, timeout: float = 15.0, statuses: tuple[str, ...] = TERMINAL
) -> Run:
    def done() -> Run | None:
        run = client.runs.retrieve(run_id)
        return run if run.status in statuses else None

    run = wait_until(done, timeout=timeout, what=f"run {run_id} to reach {statuses}")
    assert run is not None
    return run


async def async_wait_for_run(client: AsyncLetta, run_id: str, *, within_s: float = 15.0) -> Run:
    deadline = time.monotonic() + within_s
    while True:
        run = await client.runs.retrieve(run_id)
        if run.status in TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for run {run_id}")
        await asyncio.sleep(0.01)


def api_error(call: Callable[[], object], status: int) -> dict[str, Any]:
    """Run an SDK call that must fail with ``status``; return its JSON body."""
    with pytest.raises(APIStatusError) as info:
        call()
    assert info.value.status_code == status, info.value.body
    assert isinstance(info.value.body, dict)
    return info.value.body


def unique_model() -> str:
    """A model name of the test's own: the fake LLM scripts and logs per model."""
    return f"t-{uuid.uuid4().hex[:12]}"


# What a run of one tool step and then an answer streams: the step's call and return, the answer, the end.
TOOL_STEP_THEN_ANSWER = [
    "tool_call_message",
    "tool_return_message",
    "assistant_message",
    "stop_reason",
    "usage_statistics",
]


def start_running(
    client: Letta, fake_llm: FakeLLM, model: str, agent_id: str, text: str, *, timeout: float = 15.0
) -> str:
    """Submit a run and return its id once its LLM call is in flight."""
    before = len(fake_llm.requests(model))
    run = client.agents.messages.create_async(agent_id=agent_id, input=text)
    fake_llm.wait_for_requests(model, before + 1, timeout=timeout)
    wait_for_run(client, run.id, statuses=("running",), timeout=timeout)
    return run.id


def request_texts(body: dict[str, Any], role: str) -> list[str]:
    """The text of every chat message of ``role`` in an LLM request body, in order."""
    out: list[str] = []
    for message in body["messages"]:
        if message["role"] != role:
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.append("".join(p.get("text", "") for p in content if isinstance(p, dict)))
    return out


@dataclass
class ThreadServer:
    """agenthost served by uvicorn in a background thread (its own event loop), on a free port."""

    settings: Settings
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> Letta:
        return Letta(base_url=self.base_url, api_key="test", max_retries=0, timeout=30, **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncLetta:
        return AsyncLetta(base_url=self.base_url, api_key="test", max_retries=0, timeout=30, **kwargs)

    def start(self) -> ThreadServer:
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"agenthost:{self.port}", daemon=True)
        self._thread.start()
        server = self._server
        wait_until(lambda: server.started or not self._thread_alive(), timeout=30, what="server start")
        if not server.started:
            raise RuntimeError("agenthost failed to start (see the log above)")
        return self

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._server = None
        self._thread = None


@dataclass
class ProcessServer:
    """agenthost as a real ``agenthost serve`` subprocess: for crash (SIGKILL) and restart tests."""

    env: dict[str, str]
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # More arguments for ``agenthost serve`` (``--no-worker``).
    args: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Letta:
        return Letta(base_url=self.base_url, api_key="test", max_retries=0, timeout=30)

    def start(self, *, wait: bool = True) -> ProcessServer:
        cmd = [
            sys.executable,
            "-m",
            "agenthost",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env={**os.environ, **self.env}, cwd=REPO, stderr=log)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        wait_until(self._healthy, timeout=30, what="agenthost serve to answer /v1/health/")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"agenthost exited with {self.proc.returncode}: {self.stderr()}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.base_url}/v1/health/", timeout=1).status_code == 200
        return False

    @property
    def log_path(self) -> Path:
        """Where the server's output goes (a pipe nobody reads could fill under load and block it)."""
        return self.data_dir.with_name(f"{self.data_dir.name}-serve.log")

    def stderr(self) -> str:
        """Everything the server wrote so far (every start of this server, appended)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class ProcessWorker:
    """A real ``agenthost worker`` subprocess (the distributed engine's executor; it serves no HTTP).

    Its output goes to ``log_path`` (a pipe nobody reads could fill and block it).
    """

    env: dict[str, str]
    log_path: Path
    concurrency: int = 8
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessWorker:
        cmd = [sys.executable, "-m", "agenthost", "worker", "--concurrency", str(self.concurrency)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, env={**os.environ, **self.env}, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused worker cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# A client-side tool the tests offer (the client evaluates it and sends the result back).
CALCULATOR: ClientTool = {
    "name": "calculator",
    "description": "Evaluates an arithmetic expression on the client.",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
}
