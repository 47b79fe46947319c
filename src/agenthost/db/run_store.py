"""The agent loop's persistence on the database (``agent/persistence.py``'s ``RunPersistence``).

Each method is one transaction: start a run, commit a step, compact, end the run. Every write after the
start is fenced on the run's ownership (``db/run_lifecycle.py``): once a run is cancelled, failed by
recovery or handed back, nothing a late step produces can land. ``begin`` and ``commit_step`` are on
every run's path: prepared Core statements on a bare connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from agenthost.agent.context import image_file_ids
from agenthost.agent.messages import input_messages
from agenthost.agent.persistence import (
    AgentSnapshot,
    Committed,
    ContextState,
    Ending,
    Rejected,
    RunHandle,
    StartedRun,
    StepRecord,
    StoredMessage,
    TokenStream,
)
from agenthost.agent.run_request import RunRequest
from agenthost.db.database import Database
from agenthost.db.files import image_data_urls
from agenthost.db.messages import insert_messages, search_role, searchable_text, searched_types
from agenthost.db.rows import (
    AgentBlockRow,
    AgentRow,
    AgentToolRow,
    BlockRow,
    ConversationRow,
    MessageRow,
    StepRow,
    ToolRow,
)
from agenthost.db.run_lifecycle import claim, end_run, hand_back, mark_effects_started, owns_run
from agenthost.db.signals import RunSignals
from agenthost.db.threads import move_context, set_pending_approval, thread_history, thread_key, thread_state
from agenthost.db.token_log import FLUSH_INTERVAL_S, TokenLog, insert_events
from agenthost.db.types import utcnow
from agenthost.errors import NotFound
from agenthost.thread import Thread
from agenthost.tools.executor import AgentTool
from agenthost.tools.memory import BlockState, merge_edits


class RunStore:
    """``RunPersistence`` on the database; wakes this process's followers of a run after its commits."""

    def __init__(
        self, db: Database, signals: RunSignals | None = None, *, flush_interval_s: float = FLUSH_INTERVAL_S
    ) -> None:
        self._db = db
        self._signals = signals
        self._flush_interval_s = flush_interval_s

    async def begin(self, run_id: str) -> StartedRun | Rejected | None:
        """created → running, with the run's input messages entering the agent's history.

        ``None`` when the run is no longer ``created`` (cancelled while queued, or deleted). This and
        ``commit_step`` are on every run's path: prepared Core statements on a bare connection.
        """
        async with self._db.transaction() as conn:
            claimed = await claim(conn, run_id)
            if claimed is None:
                return None
            agent_id, conversation_id, attempt = claimed.agent_id, claimed.conversation_id, claimed.attempt
            handle = RunHandle(run_id, Thread(agent_id, conversation_id), attempt)
            request = RunRequest.model_validate(claimed.request)
            agent = (await conn.execute(_AGENT, {"aid": agent_id})).first()
            if agent is None:
                return None
            # The thread's state: the agent row's own for its default thread, else the conversation's.
            thread: Any = agent
            model, window = agent.model, agent.context_window
            if conversation_id is not None:
                thread = (await conn.execute(_CONVERSATION, {"cid": conversation_id})).first()
                if thread is None:  # deleted while the run waited (its runs outlive it)
                    reason = f"conversation '{conversation_id}' was deleted before this run started"
                    ending = Ending("error", reason, attempt=attempt)
                    return Rejected(reason, await end_run(conn, run_id, ending))
                model, window = thread.model or model, thread.context_window_limit or window
            approved: list[dict[str, Any]] = []
            # A forced compaction (agents.messages.compact) is a run with no input of its own.
            if request.compaction is None:
                pending = None
                if thread.pending_approval_id is not None:
                    pending = (await conn.execute(_PENDING, {"mid": thread.pending_approval_id})).first()
                try:
                    inputs, approved = input_messages(run_id, agent_id, request.inputs, pending)
                except ValueError as exc:
                    ending = Ending("error", str(exc), attempt=attempt)
                    return Rejected(str(exc), await end_run(conn, run_id, ending))
                await insert_messages(conn, inputs, conversation_id)
                if pending is not None:
                    await set_pending_approval(conn, handle.thread, None)
            history = _stored(
                handle.thread, await thread_history(conn, handle.thread, thread.context_start_seq)
            )
            images = await image_data_urls(conn, image_file_ids(history))
            blocks = await block_states(conn, agent_id)
            return StartedRun(
                handle=handle,
                request=request,
                agent=AgentSnapshot(
                    id=agent_id,
                    system=agent.system,
                    model=model,
                    context_window=window,
                    max_tokens=agent.max_tokens,
                    tools=[
                        AgentTool.from_row(t) for t in (await conn.execute(_TOOLS, {"aid": agent_id})).all()
                    ],
                    tool_rules=list(agent.tool_rules or []),
                    env=dict(agent.tool_exec_environment_variables or {}),
                    context_summary=thread.context_summary,
                ),
                blocks=blocks,
                history=history,
                images=images,
                approved_calls=approved,
            )

    async def commit_step(
        self,
        run: RunHandle,
        step: StepRecord,
        messages: list[StoredMessage],
        blocks: list[BlockState],
        *,
        pending_approval_id: str | None = None,
        ending: Ending | None = None,
        token_log: TokenStream | None = None,
    ) -> Committed | None:
        """A step's row, messages and memory edits, atomically, and with ``ending`` the terminal status
        too (one transaction for a one-step run's whole output). ``None`` if the run is no longer running.
        A run streaming tokens also logs its pending deltas and the step's other messages as events.
        """
        agent_id, conversation_id = run.agent_id, run.thread.conversation_id
        async with _handover(token_log, messages) as events, self._db.transaction() as conn:
            committed = await _own_or_end(conn, run.run_id, ending, run.attempt)
            if committed is None:
                return None
            await conn.execute(_INSERT_STEP, [_step_values(run.run_id, agent_id, step)])
            await insert_messages(conn, messages, conversation_id)
            await insert_events(conn, run.run_id, events)
            await save_blocks(conn, blocks)
            if pending_approval_id is not None:
                await set_pending_approval(conn, run.thread, pending_approval_id)
        self._wake(run.run_id)
        return committed

    def token_log(self, run: RunHandle) -> TokenLog:
        """The event log a run streaming tokens writes its deltas to."""
        return TokenLog(
            self._db, self._signals, run.run_id, run.attempt, flush_interval_s=self._flush_interval_s
        )

    async def effects_starting(self, run: RunHandle) -> bool:
        """Record, before a server-side tool first runs, that this run may have had effects (a run
        whose worker dies after this is failed, not re-queued). False if the run is no longer ours."""
        async with self._db.transaction() as conn:
            return await mark_effects_started(conn, run.run_id, run.attempt)

    async def finish(self, run_id: str, ending: Ending) -> Committed | None:
        """running → terminal. ``None`` (writing nothing) when someone else ended the run first."""
        async with self._db.transaction() as conn:
            committed = await end_run(conn, run_id, ending)
        if committed is not None:
            self._wake(run_id)
        return committed

    async def hand_back(self, run_id: str, reason: str) -> Committed | None:
        """A run this process stops executing without ending it (a shutdown past its grace period): back
        to ``created`` when it has done nothing yet (the next start runs it), else failed with ``reason``."""
        async with self._db.transaction() as conn:
            _outcome, committed = await hand_back(conn, run_id, job_id=None, reason=reason, reschedule=None)
        self._wake(run_id)
        return committed

    def _wake(self, run_id: str) -> None:
        """Wake this process's followers of the run now that its progress is committed (on PostgreSQL,
        the transaction's notification also reaches other processes')."""
        if self._signals is not None:
            self._signals.wake(run_id)

    async def context(self, thread: Thread) -> ContextState:
        """The thread's in-context messages (with ``seq``) and compaction state."""
        async with self._db.read_session() as session:
            state = await thread_state(session, thread)
            if state is None:
                raise NotFound(f"conversation '{thread.conversation_id}' not found")
            start = state.context_start_seq
            rows = await thread_history(session, thread, start)
            return ContextState(
                start, state.context_summary, state.pending_approval_id, _stored(thread, rows)
            )

    async def apply_compaction(
        self,
        run: RunHandle,
        expected_start: int | None,
        new_start: int,
        summary: str,
        messages: list[StoredMessage],
        *,
        token_log: TokenStream | None = None,
    ) -> bool:
        """Move the context's start and store the summary, with the compaction's records, atomically.

        ``False`` (nothing written) when the run is no longer running or another compaction of this
        agent moved the start first.
        """
        run_id, conversation_id = run.run_id, run.thread.conversation_id
        async with _handover(token_log, messages) as events, self._db.transaction() as conn:
            if not await owns_run(conn, run_id, run.attempt):
                return False
            moved = await conn.execute(
                move_context(conversation_id, expected_start),
                {**thread_key(run.thread), "new_start": new_start, "new_summary": summary},
            )
            if moved.rowcount != 1:
                return False  # the only write so far is the no-op fence
            await insert_messages(conn, messages, conversation_id)
            await insert_events(conn, run_id, events)
        self._wake(run_id)
        return True

    async def search_messages(
        self, agent_id: str, query: str, roles: list[str] | None, limit: int
    ) -> list[dict[str, Any]]:
        wanted = searched_types(roles)
        needle = query.lower()
        found: list[dict[str, Any]] = []
        before: int | None = None
        # Newest first, a page at a time, matched in Python on the message text (the stored JSON
        # escapes non-ASCII text and holds key names, so SQL LIKE on it would miss and mis-match).
        async with self._db.read_session() as session:
            while len(found) < limit:
                stmt = (
                    select(MessageRow.seq, MessageRow.message_type, MessageRow.body, MessageRow.created_at)
                    .where(MessageRow.agent_id == agent_id, MessageRow.message_type.in_(wanted))
                    .order_by(MessageRow.seq.desc())
                    .limit(_SEARCH_PAGE)
                )
                if before is not None:
                    stmt = stmt.where(MessageRow.seq < before)
                rows = (await session.execute(stmt)).all()
                for row in rows:
                    text = searchable_text(row.message_type, row.body)
                    if needle in text.lower():
                        found.append(
                            {
                                "date": row.created_at.isoformat(),
                                "role": search_role(row.message_type),
                                "text": text,
                            }
                        )
                        if len(found) >= limit:
                            break
                if len(rows) < _SEARCH_PAGE:
                    break
                before = rows[-1].seq
        return found


# Prepared once: building and cache-keying a statement per call was a large part of a run's CPU.
_AGENT = (
    select(
        AgentRow.system,
        AgentRow.model,
        AgentRow.context_window,
        AgentRow.max_tokens,
        AgentRow.tool_rules,
        AgentRow.tool_exec_environment_variables,
        AgentRow.pending_approval_id,
        AgentRow.context_start_seq,
        AgentRow.context_summary,
    )
    .where(AgentRow.id == bindparam("aid"))
    .with_for_update()
)
_CONVERSATION = select(
    ConversationRow.model,
    ConversationRow.context_window_limit,
    ConversationRow.pending_approval_id,
    ConversationRow.context_start_seq,
    ConversationRow.context_summary,
).where(ConversationRow.id == bindparam("cid"))
_PENDING = select(MessageRow.id, MessageRow.run_id, MessageRow.body, MessageRow.client_tool_names).where(
    MessageRow.id == bindparam("mid")
)
_BLOCKS = (
    select(
        BlockRow.id, BlockRow.label, BlockRow.value, BlockRow.limit, BlockRow.description, BlockRow.read_only
    )
    .join(AgentBlockRow, AgentBlockRow.block_id == BlockRow.id)
    .where(AgentBlockRow.agent_id == bindparam("aid"))
    .order_by(AgentBlockRow.position, BlockRow.seq)
)
_TOOLS = (
    select(
        ToolRow.id,
        ToolRow.name,
        ToolRow.tool_type,
        ToolRow.description,
        ToolRow.json_schema,
        ToolRow.source_code,
        ToolRow.return_char_limit,
        ToolRow.enable_parallel_execution,
    )
    .join(AgentToolRow, AgentToolRow.tool_id == ToolRow.id)
    .where(AgentToolRow.agent_id == bindparam("aid"))
    .order_by(AgentToolRow.position)
)
_LOCK_BLOCK = select(BlockRow.value).where(BlockRow.id == bindparam("bid")).with_for_update()
_SET_BLOCK = (
    update(BlockRow)
    .where(BlockRow.id == bindparam("bid"))
    .values(value=bindparam("val"), updated_at=bindparam("now"))
)
_INSERT_STEP = insert(StepRow)


async def block_states(conn: AsyncConnection | AsyncSession, agent_id: str) -> list[BlockState]:
    """The agent's memory blocks, in prompt order, as a run (or a direct tool call) edits them."""
    return [BlockState(*b, base=b.value) for b in (await conn.execute(_BLOCKS, {"aid": agent_id})).all()]


async def _own_or_end(
    conn: AsyncConnection, run_id: str, ending: Ending | None, attempt: int
) -> Committed | None:
    """The step's first write: the ownership check, or with ``ending`` the terminal transition."""
    if ending is None:
        if not await owns_run(conn, run_id, attempt):
            return None
        return Committed(ended=False, callback_pending=False)
    return await end_run(conn, run_id, ending)


@asynccontextmanager
async def _handover(
    token_log: TokenStream | None, messages: list[StoredMessage]
) -> AsyncIterator[list[dict[str, Any]]]:
    """The events a commit writes: none unless the run streams tokens (``db/token_log.py``)."""
    if token_log is None:
        yield []
        return
    # Only this store makes a run's token log (``token_log``), so it is one of ours.
    assert isinstance(token_log, TokenLog)
    async with token_log.handover(messages) as events:
        yield events


def _stored(thread: Thread, rows: Iterable[Any]) -> list[StoredMessage]:
    """A thread's history rows (``db/threads.py``'s columns: what the loop reads) as stored messages."""
    agent_id, conversation_id = thread.agent_id, thread.conversation_id
    return [
        StoredMessage(
            id=r.id,
            agent_id=agent_id,
            run_id=r.run_id,
            step_id=r.step_id,
            message_type=r.message_type,
            body=r.body,
            conversation_id=conversation_id,
            seq=r.seq,
        )
        for r in rows
    ]


async def save_blocks(conn: AsyncConnection | AsyncSession, blocks: list[BlockState]) -> None:
    """Write the blocks a run (or a tool run) edited, each edit applied to the block's current value
    under a row lock, so a concurrent writer's edits are kept (``tools/memory.py``). Locked in id order:
    writers of the same blocks (a block may be shared by agents) never wait on each other in a circle."""
    for block in sorted(blocks, key=lambda b: b.id):
        if not block.changed:
            continue
        current = await conn.scalar(_LOCK_BLOCK, {"bid": block.id})
        if current is not None:
            block.value = merge_edits(block, current)
        await conn.execute(_SET_BLOCK, {"bid": block.id, "val": block.value, "now": utcnow()})
        block.base, block.changed = block.value, False
        block.edits.clear()


def _step_values(run_id: str, agent_id: str, step: StepRecord) -> dict[str, Any]:
    return {
        "id": step.step_id,
        "run_id": run_id,
        "agent_id": agent_id,
        "model": step.model,
        "model_handle": step.model_handle,
        "provider_name": step.provider_name,
        "model_endpoint": step.model_endpoint,
        "context_window_limit": step.context_window,
        "prompt_tokens": step.prompt_tokens,
        "completion_tokens": step.completion_tokens,
        "total_tokens": step.total_tokens,
        "cached_input_tokens": step.cached_input_tokens,
        "reasoning_tokens": step.reasoning_tokens,
        "status": step.status,
        "stop_reason": step.stop_reason,
        "error_type": step.error_type,
        "error_data": step.error_data,
        "created_at": utcnow(),
    }


_SEARCH_PAGE = 500
