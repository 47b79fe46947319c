"""A thread of an agent: a conversation, or the agent's default thread.

A thread has its own messages, context window (compaction state), pending approval and queue of runs
(its lane: one run at a time, in order); the agent's memory blocks and tools are shared by all its
threads. ``services/threads.py`` says which thread a request names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thread:
    agent_id: str
    conversation_id: str | None = None  # None: the agent's default thread

    @property
    def lane(self) -> str:
        """The key runs queue under: one run at a time per thread, in order."""
        return self.conversation_id or self.agent_id
