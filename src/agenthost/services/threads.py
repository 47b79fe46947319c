"""Which thread of an agent a request is about: a conversation, or the agent's default thread.

A thread has its own messages, context window (compaction state), pending approval and queue of runs;
the agent's memory blocks and tools are shared by all its threads. The default thread is what the
agent routes (``/v1/agents/{id}/messages``) use; its state lives on the agent row. A conversation's
state lives on its own row.

The conversation routes name a thread as the Letta API does: a conversation id (``conv-<uuid4>``),
``default`` with an ``agent_id`` (the agent's default thread), or, deprecated, an agent id.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.agent.prompt import compile_system
from agenthost.agent.store import block_states
from agenthost.db.database import Database
from agenthost.db.rows import AgentRow, ConversationRow, RunKeyRow, RunRow
from agenthost.errors import InvalidArgument, NotFound
from agenthost.ids import check_id
from agenthost.schemas.runs import RetrieveStreamRequest
from agenthost.thread import Thread

DEFAULT = "default"


async def resolve_thread(
    session: AsyncSession, conversation_id: str, agent_id: str | None = None, *, for_update: bool = False
) -> Thread:
    """The thread ``conversation_id`` names (404 if it does not exist, 422 if it cannot be an id)."""
    if conversation_id == DEFAULT or conversation_id.startswith("agent-"):
        target = agent_id if conversation_id == DEFAULT else conversation_id
        if target is None:
            raise InvalidArgument(
                "conversation 'default' names an agent's default thread: pass agent_id with it",
                loc=("query", "agent_id"),
            )
        check_id(target, "agent", ("query", "agent_id") if conversation_id == DEFAULT else None)
        stmt = select(AgentRow.id).where(AgentRow.id == target)
        if for_update:
            stmt = stmt.with_for_update()
        if await session.scalar(stmt) is None:
            raise NotFound(f"agent '{target}' not found")
        return Thread(target, None)
    check_id(conversation_id, "conv", ("path", "conversation_id"))
    stmt2 = select(ConversationRow.agent_id).where(ConversationRow.id == conversation_id)
    if for_update:
        stmt2 = stmt2.with_for_update()
    owner = await session.scalar(stmt2)
    if owner is None:
        raise NotFound(f"conversation '{conversation_id}' not found")
    if agent_id is not None and agent_id != owner:
        raise NotFound(f"conversation '{conversation_id}' does not belong to agent '{agent_id}'")
    return Thread(owner, conversation_id)


class ThreadService:
    """What the conversation routes need to know of a thread before they use the run services."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def thread(self, conversation_id: str, agent_id: str | None = None) -> Thread:
        async with self._db.read_session() as session:
            return await resolve_thread(session, conversation_id, agent_id)

    async def run_to_follow(self, conversation_id: str, body: RetrieveStreamRequest) -> RunRow:
        """The run a conversation stream follows: ``run_id`` (of this thread), the run ``otid`` started,
        or the thread's latest run."""
        async with self._db.read_session() as session:
            thread = await resolve_thread(session, conversation_id, body.agent_id)
            lane = (
                RunRow.conversation_id == thread.conversation_id
                if thread.conversation_id
                else RunRow.conversation_id.is_(None)
            )
            stmt = select(RunRow).where(RunRow.agent_id == thread.agent_id, lane)
            if body.run_id is not None:
                check_id(body.run_id, "run", ("body", "run_id"))
                stmt = stmt.where(RunRow.id == body.run_id)
            elif body.otid is not None:
                stmt = stmt.join(RunKeyRow, RunKeyRow.run_id == RunRow.id).where(
                    RunKeyRow.agent_id == thread.agent_id, RunKeyRow.otid == body.otid
                )
            run = await session.scalar(stmt.order_by(RunRow.seq.desc()).limit(1))
        if run is None:
            what = (
                f"run '{body.run_id}'"
                if body.run_id
                else f"a run for otid '{body.otid}'"
                if body.otid
                else "runs"
            )
            raise NotFound(f"conversation '{conversation_id}' has no {what}")
        return run

    async def system_prompt(self, thread: Thread) -> str:
        """The system prompt the thread's next LLM call gets (blocks as they are now)."""
        async with self._db.read_session() as session:
            system = await session.scalar(select(AgentRow.system).where(AgentRow.id == thread.agent_id))
            blocks = await block_states(session, thread.agent_id)
        return compile_system(system or "", blocks)
