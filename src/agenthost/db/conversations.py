"""Queries on conversations (threads of one agent) and the ``Conversation`` wire view."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.agents import get_agent_row
from agenthost.db.messages import in_thread
from agenthost.db.pagination import paginate, paginate_by
from agenthost.db.rows import AgentRow, ConversationRow, MessageRow, RunRow
from agenthost.errors import NotFound
from agenthost.ids import check_id, new_id
from agenthost.pages import Page
from agenthost.schemas.conversations import (
    ArchiveStatus,
    Conversation,
    ConversationCreate,
    ConversationOrderBy,
)
from agenthost.thread import Thread

# The settings a fork takes over from its source conversation.
_FORKED_FIELDS = ("summary", "description", "model", "model_settings", "context_window_limit")


async def get_conversation(
    session: AsyncSession, conversation_id: str, *, for_update: bool = False
) -> Conversation:
    """The conversation (404 if there is none); ``for_update`` locks it until the transaction ends."""
    [view] = await _views(session, [await _row(session, conversation_id, for_update=for_update)])
    return view


async def conversation_archived(
    session: AsyncSession, conversation_id: str, *, for_update: bool = False
) -> bool:
    """Whether the conversation is archived (404 if there is none)."""
    return (await _row(session, conversation_id, for_update=for_update)).archived


async def conversation_owner(
    session: AsyncSession, conversation_id: str, *, for_update: bool = False
) -> str | None:
    """The id of the conversation's agent; None if there is no such conversation."""
    stmt = select(ConversationRow.agent_id).where(ConversationRow.id == conversation_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def insert_conversation(
    session: AsyncSession, conversation_id: str, agent_id: str, body: ConversationCreate
) -> Conversation:
    row = ConversationRow(id=conversation_id, agent_id=agent_id, **body.model_dump())
    session.add(row)
    await session.flush()
    [view] = await _views(session, [row])
    return view


async def touch_last_message(session: AsyncSession, conversation_id: str, at: datetime) -> None:
    """Record that a message was sent to the conversation at ``at`` (its ``last_message_at``)."""
    await session.execute(
        update(ConversationRow).where(ConversationRow.id == conversation_id).values(last_message_at=at)
    )


async def update_conversation(
    session: AsyncSession, conversation_id: str, changes: dict[str, Any]
) -> Conversation:
    row = await _row(session, conversation_id)
    for key, value in changes.items():
        setattr(row, key, value)
    await session.flush()
    [view] = await _views(session, [row])
    return view


async def delete_conversation(session: AsyncSession, conversation_id: str) -> None:
    """Delete the conversation (404 if there is none) with its messages; its runs stay."""
    row = await _row(session, conversation_id, for_update=True)
    await session.execute(delete(MessageRow).where(MessageRow.conversation_id == conversation_id))
    await session.delete(row)


async def list_conversations(
    session: AsyncSession,
    page: Page,
    *,
    agent_id: str | None = None,
    archive_status: ArchiveStatus = "unarchived",
    summary_search: str | None = None,
    order_by: ConversationOrderBy = "created_at",
) -> list[Conversation]:
    """One page of the listed conversations (never the hidden ones)."""
    stmt = select(ConversationRow).where(ConversationRow.hidden.is_(False))
    if agent_id is not None:
        stmt = stmt.where(ConversationRow.agent_id == agent_id)
    if archive_status != "all":
        stmt = stmt.where(ConversationRow.archived.is_(archive_status == "archived"))
    if summary_search:
        needle = summary_search.lower()
        stmt = stmt.where(
            or_(
                func.lower(ConversationRow.summary).contains(needle, autoescape=True),
                func.lower(ConversationRow.description).contains(needle, autoescape=True),
            )
        )
    key = _sort_key(order_by)
    if key is None:
        rows = await paginate(session, ConversationRow, stmt, page)
    else:
        rows = await paginate_by(session, ConversationRow, stmt, page, key)
    return await _views(session, rows)


async def fork(
    session: AsyncSession,
    agent_id: str,
    conversation_id: str | None,
    *,
    hidden: bool = False,
    message_id: str | None = None,
) -> Conversation | None:
    """A new conversation of the agent whose history is a copy of the thread's context (up to and
    including ``message_id``); None if ``message_id`` is not in that context. The source stays as it is."""
    new = ConversationRow(id=new_id("conv"), agent_id=agent_id, hidden=hidden)
    # The default thread keeps its context state on the agent row.
    source: AgentRow | ConversationRow
    if conversation_id is None:
        source = await get_agent_row(session, agent_id)
    else:
        source = await _row(session, conversation_id)
        for field in _FORKED_FIELDS:
            setattr(new, field, getattr(source, field))
    new.context_summary = source.context_summary
    history = select(MessageRow).where(
        in_thread(Thread(agent_id, conversation_id)), MessageRow.seq >= (source.context_start_seq or 0)
    )
    rows = list((await session.scalars(history.order_by(MessageRow.seq))).all())
    if message_id is not None:
        cut = next((i for i, r in enumerate(rows) if r.id == message_id), None)
        if cut is None:
            return None
        rows = rows[: _end_of_step(rows, cut) + 1]
    session.add(new)
    copies = {row.id: _copy(row, new.id) for row in rows}
    # Added in order: the copies get their seqs, hence their order, from the source's.
    session.add_all(copies.values())
    # An approval request copied without its answer (pending in the source, or answered there after
    # the cut) is pending in the fork: its tool calls wait for an answer there too.
    pending = _unanswered_approval(rows)
    new.pending_approval_id = copies[pending].id if pending is not None else None
    await session.flush()
    [view] = await _views(session, [new])
    return view


def _sort_key(order_by: ConversationOrderBy) -> ColumnElement[Any] | None:
    """The list order's key (None: creation order). A conversation with no message (or no completed
    run) yet sorts by its creation time: keys are never null, so cursors stay simple and stable."""
    if order_by == "last_message_at":
        return func.coalesce(ConversationRow.last_message_at, ConversationRow.created_at)
    if order_by == "last_run_completion":
        completed = (
            select(func.max(RunRow.completed_at))
            .where(RunRow.conversation_id == ConversationRow.id)
            .correlate(ConversationRow)
            .scalar_subquery()
        )
        return func.coalesce(completed, ConversationRow.created_at)
    return None


async def _row(session: AsyncSession, conversation_id: str, *, for_update: bool = False) -> ConversationRow:
    check_id(conversation_id, "conv", ("path", "conversation_id"))
    stmt = select(ConversationRow).where(ConversationRow.id == conversation_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"conversation '{conversation_id}' not found")
    return row


def _end_of_step(rows: list[MessageRow], cut: int) -> int:
    """A cut inside an LLM step ends with the step: its tool calls keep their returns (a call without
    its return would be refused by the provider in the fork's next prompt)."""
    step = rows[cut].step_id
    end = cut
    while step is not None and end + 1 < len(rows) and rows[end + 1].step_id == step:
        end += 1
    return end


def _unanswered_approval(rows: list[MessageRow]) -> str | None:
    """The id of the last approval request among ``rows`` with a tool call no row answers."""
    answered = {r.body.get("tool_call_id") for r in rows if r.message_type == "tool_return_message"}
    for row in reversed(rows):
        if row.message_type == "approval_request_message":
            calls = row.body.get("tool_calls") or [row.body.get("tool_call") or {}]
            if any(c.get("tool_call_id") not in answered for c in calls):
                return row.id
            return None
    return None


def _copy(row: MessageRow, conversation_id: str) -> MessageRow:
    return MessageRow(
        id=new_id("message"),
        agent_id=row.agent_id,
        conversation_id=conversation_id,
        run_id=row.run_id,
        step_id=row.step_id,
        message_type=row.message_type,
        otid=row.otid,
        body=dict(row.body),
        is_err=row.is_err,
        created_at=row.created_at,
        client_tool_names=row.client_tool_names,
    )


async def _views(session: AsyncSession, rows: Sequence[ConversationRow]) -> list[Conversation]:
    """The wire views of ``rows``, with their in-context message ids (one query for them all)."""
    in_context: dict[str, list[str]] = {row.id: [] for row in rows}
    if rows:
        stmt = (
            select(MessageRow.conversation_id, MessageRow.id)
            .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
            .where(
                MessageRow.conversation_id.in_(list(in_context)),
                MessageRow.seq >= func.coalesce(ConversationRow.context_start_seq, 0),
            )
            .order_by(MessageRow.seq)
        )
        for conv_id, msg_id in (await session.execute(stmt)).all():
            in_context[str(conv_id)].append(msg_id)
    return [
        Conversation(
            id=row.id,
            agent_id=row.agent_id,
            summary=row.summary,
            description=row.description,
            model=row.model,
            model_settings=row.model_settings,
            context_window_limit=row.context_window_limit,
            archived=row.archived,
            archived_at=row.archived_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_message_at=row.last_message_at,
            in_context_message_ids=in_context[row.id],
        )
        for row in rows
    ]
