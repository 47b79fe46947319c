"""Queries on message history: an agent's, or one thread's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.pagination import paginate
from agenthost.db.rows import MessageRow
from agenthost.pages import Page

# A stored message in its wire shape: ``message_view`` of services/views.py, passed in by the caller
# because how a message looks on the wire is the messages work's business, not the query's.
MessageView = Callable[[MessageRow], dict[str, Any]]


def in_thread(agent_id: str, conversation_id: str | None) -> ColumnElement[bool]:
    """The messages of one thread: a conversation's, or the agent's default thread's (no conversation)."""
    return and_(
        MessageRow.agent_id == agent_id,
        MessageRow.conversation_id.is_(None)
        if conversation_id is None
        else MessageRow.conversation_id == conversation_id,
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
    view: MessageView,
    include_types: Sequence[str] | None = None,
    include_err: bool | None = None,
    use_assistant_message: bool = True,
) -> list[dict[str, Any]]:
    """One page of all the agent's messages (every thread's), in ``view``'s shape."""
    stmt = filter_history(
        select(MessageRow).where(MessageRow.agent_id == agent_id),
        include_types=include_types,
        include_err=include_err,
        use_assistant_message=use_assistant_message,
    )
    return [view(row) for row in await paginate(session, MessageRow, stmt, page)]


async def thread_history_page(
    session: AsyncSession,
    agent_id: str,
    conversation_id: str | None,
    page: Page,
    *,
    view: MessageView,
    include_types: Sequence[str] | None = None,
    include_err: bool | None = None,
) -> list[dict[str, Any]]:
    """One page of the thread's whole history (in and out of its context window), in ``view``'s shape."""
    stmt = filter_history(
        select(MessageRow).where(in_thread(agent_id, conversation_id)),
        include_types=include_types,
        include_err=include_err,
    )
    return [view(row) for row in await paginate(session, MessageRow, stmt, page)]
