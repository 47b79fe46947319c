"""How the run engine interrupts a running run: cooperatively, and only where it is safe.

Only the awaits wrapped in ``interruptible`` (the LLM call, a tool call) are cancelled, so a cancel
never lands in the middle of a database write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal, TypeVar

T = TypeVar("T")

InterruptReason = Literal["cancelled", "shutdown"]


class RunInterrupted(Exception):
    def __init__(self, reason: InterruptReason) -> None:
        super().__init__(reason)
        self.reason: InterruptReason = reason


class RunControl:
    def __init__(self) -> None:
        self.reason: InterruptReason | None = None
        self._inflight: asyncio.Future[object] | None = None

    def interrupt(self, reason: InterruptReason) -> None:
        if self.reason is None:
            self.reason = reason
        if self._inflight is not None:
            self._inflight.cancel()

    def check(self) -> None:
        if self.reason is not None:
            raise RunInterrupted(self.reason)

    async def interruptible(self, awaitable: Awaitable[T]) -> T:
        self.check()
        task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
        self._inflight = task  # type: ignore[assignment]
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.reason is not None and (current is None or not current.cancelling()):
                raise RunInterrupted(self.reason) from None
            task.cancel()
            raise
        finally:
            self._inflight = None
