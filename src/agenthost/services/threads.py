"""Which thread of an agent a request is about: a conversation, or the agent's default thread.

A thread has its own messages, context window (compaction state), pending approval and queue of runs;
the agent's memory blocks and tools are shared by all its threads. The default thread is what the
agent routes (``/v1/agents/{id}/messages``) use; its state lives on the agent row. A conversation's
state lives on its own row.

The conversation routes name a thread as the Letta API does: a conversation id (``conv-<uuid4>``),
``default`` with an ``agent_id`` (the agent's default thread), or, deprecated, an agent id.
"""

from __future__ import annotations

from agenthost.agent.prompt import compile_system
from agenthost.db import agents as agents_db
from agenthost.db import conversations as conversations_db
from agenthost.db import runs as runs_db
from agenthost.db.database import Database, Session
from agenthost.db.run_store import block_states
from agenthost.db.runs import RunRecord
from agenthost.errors import InvalidArgument, NotFound
from agenthost.ids import check_id
from agenthost.schemas.runs import RetrieveStreamRequest
from agenthost.thread import Thread

DEFAULT = "default"


async def resolve_thread(
    session: Session, conversation_id: str, agent_id: str | None = None, *, for_update: bool = False
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
        if not await agents_db.agent_exists(session, target, for_update=for_update):
            raise NotFound(f"agent '{target}' not found")
        return Thread(target, None)
    check_id(conversation_id, "conv", ("path", "conversation_id"))
    owner = await conversations_db.conversation_owner(session, conversation_id, for_update=for_update)
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

    async def run_to_follow(self, conversation_id: str, body: RetrieveStreamRequest) -> RunRecord:
        """The run a conversation stream follows: ``run_id`` (of this thread), the run ``otid`` started,
        or the thread's latest run."""
        async with self._db.read_session() as session:
            thread = await resolve_thread(session, conversation_id, body.agent_id)
            if body.run_id is not None:
                check_id(body.run_id, "run", ("body", "run_id"))
            run = await runs_db.latest_run(
                session,
                thread.agent_id,
                thread.conversation_id,
                run_id=body.run_id,
                otid=None if body.run_id is not None else body.otid,
            )
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
            system = await agents_db.agent_system(session, thread.agent_id)
            blocks = await block_states(session, thread.agent_id)
        return compile_system(system or "", blocks)
