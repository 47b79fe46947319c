"""Serving a fake's Starlette app with uvicorn in a background thread, on a free port of 127.0.0.1.

The fakes (OpenAI-compatible, Anthropic, SGLang) subclass :class:`ServedApp`: they build ``self.app``
with ``lifespan=self._lifespan`` and get start/stop (also as a context manager), the port, and
:meth:`_wait`, which a scripted hang or delay awaits so that stopping the server never blocks on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request


class ServedApp:
    app: Starlette
    label = "fake server"

    def _init_serving(self, host: str, port: int = 0) -> None:
        self.host = host
        self._requested_port, self._port = port, 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"{self.label} is not started")
        return self._port

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        yield

    async def _wait(self, request: Request, seconds: float | None = None) -> bool:
        """Sleep ``seconds`` (None: forever). False if the client left or the server stopped first."""
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(_until_disconnect(request))]
        if self._stop_event is not None:
            waiters.append(asyncio.ensure_future(self._stop_event.wait()))
        timer = None if seconds is None else asyncio.ensure_future(asyncio.sleep(seconds))
        waiters += [timer] if timer is not None else []
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return timer is not None and timer in done

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{self.label} already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        # "auto" picks uvloop / httptools when installed; log_config=None leaves host logging alone.
        config = uvicorn.Config(
            self.app,
            loop="auto",
            http="auto",
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=self.label, daemon=True)
        self._sock, self._server, self._thread = sock, server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.label} did not start")
            time.sleep(0.002)
        self._port = sock.getsockname()[1]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (idempotent); pending hangs and delays are released immediately."""
        server, thread, loop, event = self._server, self._thread, self._loop, self._stop_event
        if server is None or thread is None:
            return
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = self._loop = self._stop_event = None
        self._port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
