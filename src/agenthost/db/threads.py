"""Statements on a thread's state: an agent's default thread keeps it on the agent row, a conversation
on its own row (``services/threads.py`` says which thread a request is about).

Both rows have the same three columns: ``context_start_seq`` and ``context_summary`` (compaction) and
``pending_approval_id``. A thread's messages are the agent's messages with its ``conversation_id``
(None for the default thread). The statements are prepared once per kind of thread, with the thread's
key bound as ``tid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from agenthost.db.rows import AgentRow, ConversationRow, MessageRow
from agenthost.thread import Thread


def _row(conversation: bool) -> type[AgentRow] | type[ConversationRow]:
    return ConversationRow if conversation else AgentRow


def _state(conversation: bool) -> Select[int | None, str | None, str | None]:
    row = _row(conversation)
    return select(row.context_start_seq, row.context_summary, row.pending_approval_id).where(
        row.id == bindparam("tid")
    )


def _pending(conversation: bool) -> Update:
    row = _row(conversation)
    return update(row).where(row.id == bindparam("tid")).values(pending_approval_id=bindparam("pid"))


def _history(conversation: bool) -> Select[Any]:
    # Only the messages in the context window: a run's cost follows the window, not the whole history.
    thread = (
        MessageRow.conversation_id == bindparam("tid")
        if conversation
        else MessageRow.conversation_id.is_(None)
    )
    return (
        select(
            MessageRow.seq,
            MessageRow.id,
            MessageRow.run_id,
            MessageRow.message_type,
            MessageRow.step_id,
            MessageRow.body,
        )
        .where(MessageRow.agent_id == bindparam("aid"), thread, MessageRow.seq >= bindparam("start"))
        .order_by(MessageRow.seq)
    )


def _lock(conversation: bool, exclusive: bool) -> Select[str, str | None]:
    # FOR NO KEY UPDATE (not ``exclusive``) does not block inserts of rows that reference the thread's row.
    owner = ConversationRow.agent_id if conversation else AgentRow.id
    row = _row(conversation)
    return (
        select(owner, row.pending_approval_id)
        .where(row.id == bindparam("tid"))
        .with_for_update(key_share=not exclusive)
    )


@dataclass(frozen=True, slots=True)
class LockedThread:
    """A thread whose row this transaction holds: its agent, and the approval request it waits on."""

    agent_id: str
    pending_approval_id: str | None


_STATE = {c: _state(c) for c in (False, True)}
_LOCK = {(c, x): _lock(c, x) for c in (False, True) for x in (False, True)}
_PENDING = {c: _pending(c) for c in (False, True)}
_HISTORY = {c: _history(c) for c in (False, True)}


def thread_key(thread: Thread) -> dict[str, str]:
    return {"tid": thread.lane, "aid": thread.agent_id}


async def thread_state(conn: AsyncConnection | AsyncSession, thread: Thread) -> Any:
    """(context_start_seq, context_summary, pending_approval_id) of the thread; None if it is gone."""
    return (await conn.execute(_STATE[thread.conversation_id is not None], thread_key(thread))).first()


async def lock_agent_thread(
    session: AsyncSession, agent_id: str, *, exclusive: bool = False
) -> LockedThread | None:
    """Lock the agent's default thread until the transaction ends; None if there is no such agent."""
    return await _locked(session, False, agent_id, exclusive)


async def lock_conversation(
    session: AsyncSession, conversation_id: str, *, exclusive: bool = False
) -> LockedThread | None:
    """Lock the conversation until the transaction ends; None if there is no such conversation."""
    return await _locked(session, True, conversation_id, exclusive)


async def _locked(
    session: AsyncSession, conversation: bool, tid: str, exclusive: bool
) -> LockedThread | None:
    row = (await session.execute(_LOCK[conversation, exclusive], {"tid": tid})).first()
    return None if row is None else LockedThread(row[0], row[1])


async def thread_history(
    conn: AsyncConnection | AsyncSession, thread: Thread, start: int | None
) -> list[Any]:
    """The thread's in-context rows (seq, id, run_id, message_type, step_id, body), oldest first."""
    params = {**thread_key(thread), "start": start or 0}
    return list((await conn.execute(_HISTORY[thread.conversation_id is not None], params)).all())


async def set_pending_approval(
    conn: AsyncConnection | AsyncSession, thread: Thread, message_id: str | None
) -> None:
    params = {**thread_key(thread), "pid": message_id}
    await conn.execute(_PENDING[thread.conversation_id is not None], params)


def move_context(conversation_id: str | None, expected_start: int | None) -> Update:
    """Set the thread's context start and summary (bound ``new_start``, ``new_summary``), only if its start
    is still ``expected_start`` (another compaction may have moved it)."""
    row = _row(conversation_id is not None)
    stmt = (
        update(row)
        .where(row.id == bindparam("tid"))
        .values(context_start_seq=bindparam("new_start"), context_summary=bindparam("new_summary"))
    )
    if expected_start is None:
        return stmt.where(row.context_start_seq.is_(None))
    return stmt.where(row.context_start_seq == expected_start)
