"""Cancelling runs (of an agent, of a conversation) and deleting them.

A cancel commits the runs' terminal status first (``db/run_lifecycle.py``'s cancel transition, with the
same bookkeeping as any run's end), then asks the engine to stop them at their next safe point
(``RunEngine.interrupt``); the fenced writes of the run's execution make sure nothing it produces later
lands. A thread's pending approval is closed with an error answer to
each of its tool calls, so the thread's context stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.agent.messages import new_message
from agenthost.db.agents import get_agent_row
from agenthost.db.database import Database
from agenthost.db.rows import AgentRow, ConversationRow, MessageRow, RunRow
from agenthost.db.run_lifecycle import Cancelled, cancel_runs
from agenthost.engine.base import RunEngine
from agenthost.errors import NotFound
from agenthost.ids import check_id
from agenthost.runs.lifecycle import ACTIVE
from agenthost.schemas.letta_messages import ApprovalRequestMessageBody, ToolReturnMessageBody
from agenthost.runs.callbacks import CallbackDispatcher
from agenthost.runs.service import get_run_row

CANCELLED_TOOL_RETURN = "The run was cancelled before this tool call was answered."


class RunCancellation:
    def __init__(self, db: Database, engine: RunEngine, callbacks: CallbackDispatcher) -> None:
        self._db = db
        self._engine = engine
        self._callbacks = callbacks

    async def cancel_for_agent(self, agent_id: str, run_ids: Sequence[str] | None) -> dict[str, str]:
        """Cancel the named runs (or every active run) of an agent and close its pending approval."""
        async with self._db.session() as session:
            agent = await get_agent_row(session, agent_id, for_update=True)
            stmt = select(RunRow).where(RunRow.agent_id == agent_id)
            if run_ids:
                for i, run_id in enumerate(run_ids):
                    check_id(run_id, "run", ("body", "run_ids", i))
                stmt = stmt.where(RunRow.id.in_(list(run_ids)))
            else:
                stmt = stmt.where(RunRow.status.in_(sorted(ACTIVE)))
            runs = list((await session.scalars(stmt.with_for_update())).all())
            if run_ids:
                missing = set(run_ids) - {r.id for r in runs}
                if missing:
                    raise NotFound(f"agent '{agent_id}' has no runs {sorted(missing)}")
            outcome = {r.id: r.status for r in runs}
            cancelled = await cancel_runs(session, [r.id for r in runs if r.status in ACTIVE])
            outcome.update({c.run_id: "cancelled" for c in cancelled})
            await self._close_pending_approval(session, agent, only_runs=run_ids)
            # The agent's cancel reaches its conversations' runs too; each one's pending approval closes.
            for conversation_id in sorted({c.conversation_id for c in cancelled if c.conversation_id}):
                conversation = await session.scalar(
                    select(ConversationRow).where(ConversationRow.id == conversation_id).with_for_update()
                )
                if conversation is not None:
                    await self._close_pending_approval(session, conversation, only_runs=run_ids)
        await self._after_cancel(cancelled)
        return outcome

    async def cancel_for_conversation(self, conversation_id: str) -> dict[str, str]:
        """Cancel the conversation's active runs, and only those, and close its pending approval."""
        check_id(conversation_id, "conv", ("path", "conversation_id"))
        async with self._db.session() as session:
            conversation = await session.scalar(
                select(ConversationRow).where(ConversationRow.id == conversation_id).with_for_update()
            )
            if conversation is None:
                raise NotFound(f"conversation '{conversation_id}' not found")
            stmt = select(RunRow.id).where(
                RunRow.conversation_id == conversation_id, RunRow.status.in_(sorted(ACTIVE))
            )
            cancelled = await cancel_runs(session, list((await session.scalars(stmt)).all()))
            await self._close_pending_approval(session, conversation)
        await self._after_cancel(cancelled)
        return {c.run_id: "cancelled" for c in cancelled}

    async def delete(self, run_id: str) -> None:
        """Cancel the run if it is live, then delete it with its messages and steps."""
        async with self._db.session() as session:
            run = await get_run_row(session, run_id, for_update=True)
            cancelled = await cancel_runs(session, [run_id]) if run.status in ACTIVE else []
        if cancelled:
            await self._after_cancel(cancelled, notify=False)
        async with self._db.session() as session:
            thread: AgentRow | ConversationRow | None
            if run.conversation_id is None:
                thread = await session.scalar(
                    select(AgentRow).where(AgentRow.id == run.agent_id).with_for_update()
                )
            else:
                thread = await session.scalar(
                    select(ConversationRow).where(ConversationRow.id == run.conversation_id).with_for_update()
                )
            if thread is not None and thread.pending_approval_id is not None:
                pending = await session.scalar(
                    select(MessageRow.run_id).where(MessageRow.id == thread.pending_approval_id)
                )
                if pending == run_id:
                    thread.pending_approval_id = None
            await session.execute(delete(MessageRow).where(MessageRow.run_id == run_id))
            await session.execute(delete(RunRow).where(RunRow.id == run_id))

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
        session: AsyncSession,
        thread: AgentRow | ConversationRow,
        *,
        only_runs: Sequence[str] | None = None,
    ) -> None:
        """Answer every pending tool call of the thread (the agent's default thread, or a conversation)
        with an error so its context stays valid, and unblock it."""
        if thread.pending_approval_id is None:
            return
        pending = await session.scalar(select(MessageRow).where(MessageRow.id == thread.pending_approval_id))
        if pending is not None and only_runs and pending.run_id not in only_runs:
            return
        thread.pending_approval_id = None
        if pending is None:
            return
        for call in ApprovalRequestMessageBody.model_validate(pending.body).calls():
            answer = new_message(
                pending.run_id or "",
                pending.agent_id,
                ToolReturnMessageBody.of(call.tool_call_id, call.name, "error", CANCELLED_TOOL_RETURN),
                step_id=pending.step_id,
                is_err=True,
            )
            answer.conversation_id = pending.conversation_id
            session.add(answer)
