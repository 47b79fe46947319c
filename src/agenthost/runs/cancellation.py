"""Cancelling runs (of an agent, of a conversation) and deleting them.

A cancel commits the runs' terminal status first (``db/run_lifecycle.py``'s cancel transition, with the
same bookkeeping as any run's end), then asks the engine to stop them at their next safe point
(``RunEngine.interrupt``); the fenced writes of the run's execution make sure nothing it produces later
lands. A thread's pending approval is closed with an error answer to
each of its tool calls, so the thread's context stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence

from agenthost.agent.messages import new_message
from agenthost.db import messages as messages_db
from agenthost.db import runs as runs_db
from agenthost.db import threads as threads_db
from agenthost.db.database import Database, Session
from agenthost.db.run_lifecycle import ACTIVE, Cancelled, cancel_runs
from agenthost.db.threads import LockedThread
from agenthost.engine.base import RunEngine
from agenthost.errors import NotFound
from agenthost.ids import check_id
from agenthost.runs.callbacks import CallbackDispatcher
from agenthost.schemas.letta_messages import ApprovalRequestMessageBody, ToolReturnMessageBody
from agenthost.thread import Thread

CANCELLED_TOOL_RETURN = "The run was cancelled before this tool call was answered."


class RunCancellation:
    def __init__(self, db: Database, engine: RunEngine, callbacks: CallbackDispatcher) -> None:
        self._db = db
        self._engine = engine
        self._callbacks = callbacks

    async def cancel_for_agent(self, agent_id: str, run_ids: Sequence[str] | None) -> dict[str, str]:
        """Cancel the named runs (or every active run) of an agent and close its pending approval."""
        check_id(agent_id, "agent")
        async with self._db.session() as session:
            agent = await threads_db.lock_agent_thread(session, agent_id, exclusive=True)
            if agent is None:
                raise NotFound(f"agent '{agent_id}' not found")
            for i, run_id in enumerate(run_ids or ()):
                check_id(run_id, "run", ("body", "run_ids", i))
            runs = await runs_db.lock_agent_runs(session, agent_id, run_ids)
            if run_ids:
                missing = set(run_ids) - {run_id for run_id, _ in runs}
                if missing:
                    raise NotFound(f"agent '{agent_id}' has no runs {sorted(missing)}")
            outcome = dict(runs)
            cancelled = await cancel_runs(session, [r for r, status in runs if status in ACTIVE])
            outcome.update({c.run_id: "cancelled" for c in cancelled})
            await self._close_pending_approval(session, agent_id, None, agent, only_runs=run_ids)
            # The agent's cancel reaches its conversations' runs too; each one's pending approval closes.
            for conversation_id in sorted({c.conversation_id for c in cancelled if c.conversation_id}):
                conversation = await threads_db.lock_conversation(session, conversation_id, exclusive=True)
                if conversation is not None:
                    await self._close_pending_approval(
                        session, agent_id, conversation_id, conversation, only_runs=run_ids
                    )
        await self._after_cancel(cancelled)
        return outcome

    async def cancel_for_conversation(self, conversation_id: str) -> dict[str, str]:
        """Cancel the conversation's active runs, and only those, and close its pending approval."""
        check_id(conversation_id, "conv", ("path", "conversation_id"))
        async with self._db.session() as session:
            conversation = await threads_db.lock_conversation(session, conversation_id, exclusive=True)
            if conversation is None:
                raise NotFound(f"conversation '{conversation_id}' not found")
            active = await runs_db.active_conversation_runs(session, conversation_id)
            cancelled = await cancel_runs(session, active)
            await self._close_pending_approval(session, conversation.agent_id, conversation_id, conversation)
        await self._after_cancel(cancelled)
        return {c.run_id: "cancelled" for c in cancelled}

    async def delete(self, run_id: str) -> None:
        """Cancel the run if it is live, then delete it with its messages and steps."""
        async with self._db.session() as session:
            run = await runs_db.get_run_record(session, run_id, for_update=True)
            cancelled = await cancel_runs(session, [run_id]) if run.status in ACTIVE else []
        if cancelled:
            await self._after_cancel(cancelled, notify=False)
        async with self._db.session() as session:
            thread = (
                await threads_db.lock_agent_thread(session, run.agent_id, exclusive=True)
                if run.conversation_id is None
                else await threads_db.lock_conversation(session, run.conversation_id, exclusive=True)
            )
            if thread is not None and thread.pending_approval_id is not None:
                if await messages_db.message_run(session, thread.pending_approval_id) == run_id:
                    await threads_db.set_pending_approval(
                        session, Thread(run.agent_id, run.conversation_id), None
                    )
            await runs_db.delete_run(session, run_id)

    async def _after_cancel(self, runs: Sequence[Cancelled], *, notify: bool = True) -> None:
        # The status is already committed; the engine stops the loop at its next safe point, and
        # (per-thread FIFO) starts the thread's next run only after this one has left the loop.
        for run in runs:
            await self._engine.interrupt(run.run_id)
        if notify:
            for run in runs:
                if run.callback_pending:
                    self._callbacks.notify(run.run_id)

    async def _close_pending_approval(
        self,
        session: Session,
        agent_id: str,
        conversation_id: str | None,
        thread: LockedThread,
        *,
        only_runs: Sequence[str] | None = None,
    ) -> None:
        """Answer every pending tool call of the thread (the agent's default thread, or a conversation)
        with an error so its context stays valid, and unblock it."""
        if thread.pending_approval_id is None:
            return
        pending = await messages_db.approval_request(session, thread.pending_approval_id)
        if pending is not None and only_runs and pending.run_id not in only_runs:
            return
        await threads_db.set_pending_approval(session, Thread(agent_id, conversation_id), None)
        if pending is None:
            return
        answers = [
            new_message(
                pending.run_id or "",
                pending.agent_id,
                ToolReturnMessageBody.of(call.tool_call_id, call.name, "error", CANCELLED_TOOL_RETURN),
                step_id=pending.step_id,
                is_err=True,
            )
            for call in ApprovalRequestMessageBody.model_validate(pending.body).calls()
        ]
        await messages_db.insert_messages(session, answers, pending.conversation_id)
