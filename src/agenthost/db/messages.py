"""Queries on message history: an agent's, or one thread's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from agenthost.agent.persistence import StoredMessage
from agenthost.db.pagination import paginate
from agenthost.db.rows import MessageRow
from agenthost.pages import Page
from agenthost.schemas.letta_messages import LETTA_MESSAGE, ApprovalRequestMessage, LettaMessage
from agenthost.thread import Thread


def in_thread(thread: Thread) -> ColumnElement[bool]:
    """The messages of one thread: a conversation's, or the agent's default thread's (no conversation)."""
    return and_(
        MessageRow.agent_id == thread.agent_id,
        MessageRow.conversation_id.is_(None)
        if thread.conversation_id is None
        else MessageRow.conversation_id == thread.conversation_id,
    )


def filter_history(
    stmt: Select[Any],
    *,
    include_types: Sequence[str] | None,
    include_err: bool | None,
    use_assistant_message: bool = True,
) -> Select[Any]:
    """Narrow a history query to some message types and, with ``include_err=False``, to no errors."""
    if include_types is not None:
        # Coarse filter in SQL; a send_message call may still turn into an assistant_message in the views.
        kinds = set(include_types) | ({"tool_call_message"} if use_assistant_message else set())
        stmt = stmt.where(MessageRow.message_type.in_(sorted(kinds)))
    if include_err is False:
        stmt = stmt.where(MessageRow.is_err.is_(False))
    return stmt


async def agent_history(
    session: AsyncSession,
    agent_id: str,
    page: Page,
    *,
    include_types: Sequence[str] | None = None,
    include_err: bool | None = None,
    use_assistant_message: bool = True,
) -> list[LettaMessage]:
    """One page of all the agent's messages (every thread's), as Letta messages."""
    stmt = filter_history(
        select(MessageRow).where(MessageRow.agent_id == agent_id),
        include_types=include_types,
        include_err=include_err,
        use_assistant_message=use_assistant_message,
    )
    return [message_view(row) for row in await paginate(session, MessageRow, stmt, page)]


async def thread_history_page(
    session: AsyncSession,
    thread: Thread,
    page: Page,
    *,
    include_types: Sequence[str] | None = None,
    include_err: bool | None = None,
) -> list[LettaMessage]:
    """One page of the thread's whole history (in and out of its context window), as Letta messages."""
    stmt = filter_history(
        select(MessageRow).where(in_thread(thread)),
        include_types=include_types,
        include_err=include_err,
    )
    return [message_view(row) for row in await paginate(session, MessageRow, stmt, page)]


async def approval_request(session: AsyncSession, message_id: str) -> StoredMessage | None:
    """The approval request message ``message_id`` (a thread's pending approval); None if it is gone."""
    row = await session.scalar(select(MessageRow).where(MessageRow.id == message_id))
    if row is None:
        return None
    return StoredMessage(
        id=row.id,
        agent_id=row.agent_id,
        run_id=row.run_id,
        step_id=row.step_id,
        message_type=row.message_type,
        body=row.body,
        otid=row.otid,
        is_err=row.is_err,
        created_at=row.created_at,
        client_tool_names=row.client_tool_names,
        conversation_id=row.conversation_id,
        seq=row.seq,
    )


async def message_run(session: AsyncSession, message_id: str) -> str | None:
    """The id of the run that wrote message ``message_id``."""
    return await session.scalar(select(MessageRow.run_id).where(MessageRow.id == message_id))


def message_view(row: MessageRow | StoredMessage) -> LettaMessage:
    """The message a row stores, read with the model of its type."""
    return LETTA_MESSAGE.validate_python(_fields(row))


def pending_approval_view(row: MessageRow) -> ApprovalRequestMessage:
    """The agent's pending approval request (``AgentState.pending_approval``)."""
    return ApprovalRequestMessage.model_validate(_fields(row))


def _fields(row: MessageRow | StoredMessage) -> dict[str, object]:
    return {
        **row.body,
        "id": row.id,
        "date": row.created_at,
        "message_type": row.message_type,
        "otid": row.otid,
        "run_id": row.run_id,
        "step_id": row.step_id,
        "is_err": row.is_err or None,
        "seq_id": row.seq,
    }


_MESSAGE_COLUMNS = (
    "id",
    "agent_id",
    "run_id",
    "conversation_id",
    "step_id",
    "message_type",
    "otid",
    "body",
    "is_err",
    "created_at",
    "client_tool_names",
)
_INSERT = insert(MessageRow)


async def insert_messages(
    conn: AsyncConnection | AsyncSession, messages: list[StoredMessage], conversation_id: str | None
) -> None:
    """Store new messages in a thread (``conversation_id``; None: the agent's default thread)."""
    for message in messages:
        message.conversation_id = conversation_id
    if messages:
        await conn.execute(_INSERT, [{c: getattr(m, c) for c in _MESSAGE_COLUMNS} for m in messages])


# conversation_search: which message types each role means, and what text of a message is searched.
_SEARCHED = {"user": "user_message", "assistant": "assistant_message", "tool": "tool_return_message"}


def searched_types(roles: Sequence[str] | None) -> list[str]:
    """The message types ``roles`` (None: all of them) search."""
    return [_SEARCHED[r] for r in roles or _SEARCHED if r in _SEARCHED]


def search_role(message_type: str) -> str:
    return {"user_message": "user", "assistant_message": "assistant"}.get(message_type, "tool")


def searchable_text(message_type: str, body: dict[str, Any]) -> str:
    """The text of a message that conversation_search matches."""
    if message_type == "tool_return_message":
        return str(body.get("tool_return", ""))
    content = body.get("content", "")
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
