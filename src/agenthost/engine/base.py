"""The run-engine interface: a distributed engine replaces the embedded one behind it."""

from __future__ import annotations

from abc import ABC, abstractmethod

from agenthost.db.database import Session
from agenthost.thread import Thread


class RunEngine(ABC):
    """Executes committed ``created`` runs: one at a time per thread of an agent (its default thread, or a
    conversation: ``agenthost/thread.py``), in arrival order. Runs of different threads, even of one
    agent, may run at once.
    """

    @abstractmethod
    async def start(self) -> None:
        """Recover what a previous process left behind, then begin executing."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop executing; in-flight runs finish within a grace period or end as failed."""

    async def defer_in(self, session: Session, run_id: str, thread: Thread) -> None:  # noqa: B027
        """Schedule the run inside the transaction that inserts its row (a distributed engine's job
        commits with the run, or neither does). The embedded engine schedules after the commit."""

    @abstractmethod
    async def enqueue(self, run_id: str, thread: Thread) -> None:
        """Schedule a run whose row is already committed (a no-op where ``defer_in`` did it)."""

    @abstractmethod
    async def interrupt(self, run_id: str) -> None:
        """Stop a running run promptly (its row is already marked cancelled)."""

    @abstractmethod
    async def wait(self, run_id: str) -> None:
        """Return once the run is terminal (bound it with ``asyncio.timeout``)."""
