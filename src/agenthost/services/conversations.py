"""Conversations: threads of one agent, each with its own message history.

Create, read, list, update, delete, fork, and the message history of a thread. Sending messages to a
conversation is the run path's business (``services/runs.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.database import Database
from agenthost.db.rows import AgentRow, ConversationRow, MessageRow, RunRow
from agenthost.db.types import utcnow
from agenthost.errors import InvalidArgument, NotFound
from agenthost.ids import check_id, new_id
from agenthost.llm.providers import Providers
from agenthost.schemas.conversations import (
    ArchiveStatus,
    Conversation,
    ConversationCreate,
    ConversationOrderBy,
    ConversationUpdate,
)
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.services.agents import get_agent_row
from agenthost.services.messages import filter_history
from agenthost.services.pagination import Page, paginate, paginate_by
from agenthost.services.threads import Thread, resolve_thread
from agenthost.services.views import message_views

# The settings a fork takes over from its source conversation.
_FORKED_FIELDS = ("summary", "description", "model", "model_settings", "context_window_limit")


async def get_conversation_row(
    session: AsyncSession, conversation_id: str, *, for_update: bool = False
) -> ConversationRow:
    check_id(conversation_id, "conv", ("path", "conversation_id"))
    stmt = select(ConversationRow).where(ConversationRow.id == conversation_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"conversation '{conversation_id}' not found")
    return row


def _in_thread(thread: Thread) -> ColumnElement[bool]:
    return and_(
        MessageRow.agent_id == thread.agent_id,
        MessageRow.conversation_id.is_(None)
        if thread.conversation_id is None
        else MessageRow.conversation_id == thread.conversation_id,
    )


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


class ConversationService:
    def __init__(self, db: Database, providers: Providers) -> None:
        self._db = db
        self._providers = providers

    async def create(self, agent_id: str, body: ConversationCreate) -> Conversation:
        check_id(agent_id, "agent", ("query", "agent_id"))
        if body.model is not None:
            self._providers.resolve(body.model, loc=("body", "model"))
        async with self._db.session() as session:
            await get_agent_row(session, agent_id)
            row = ConversationRow(id=new_id("conv"), agent_id=agent_id, **body.model_dump())
            session.add(row)
            await session.flush()
            [view] = await _views(session, [row])
            return view

    async def retrieve(self, conversation_id: str) -> Conversation:
        async with self._db.read_session() as session:
            [view] = await _views(session, [await get_conversation_row(session, conversation_id)])
            return view

    async def list_conversations(
        self,
        page: Page,
        *,
        agent_id: str | None = None,
        archive_status: ArchiveStatus = "unarchived",
        summary_search: str | None = None,
        order_by: ConversationOrderBy = "created_at",
    ) -> list[Conversation]:
        """Listed conversations (never the hidden ones), newest first unless ``page`` says otherwise."""
        stmt = select(ConversationRow).where(ConversationRow.hidden.is_(False))
        if agent_id is not None:
            check_id(agent_id, "agent", ("query", "agent_id"))
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
        async with self._db.read_session() as session:
            if agent_id is not None:
                await get_agent_row(session, agent_id)
            if key is None:
                rows = await paginate(session, ConversationRow, stmt, page)
            else:
                rows = await paginate_by(session, ConversationRow, stmt, page, key)
            return await _views(session, rows)

    async def update(self, conversation_id: str, body: ConversationUpdate) -> Conversation:
        fields = body.model_dump(exclude_unset=True)
        if fields.get("model") is not None:
            self._providers.resolve(fields["model"], loc=("body", "model"))
        async with self._db.session() as session:
            row = await get_conversation_row(session, conversation_id, for_update=True)
            for key, value in fields.items():
                if key == "archived":
                    if value is None:
                        raise InvalidArgument("archived cannot be null", loc=("body", "archived"))
                    if value != row.archived:
                        row.archived_at = utcnow() if value else None
                setattr(row, key, value)
            await session.flush()
            [view] = await _views(session, [row])
            return view

    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation with its messages; its runs stay (they name the conversation)."""
        async with self._db.session() as session:
            row = await get_conversation_row(session, conversation_id, for_update=True)
            await session.execute(delete(MessageRow).where(MessageRow.conversation_id == conversation_id))
            await session.delete(row)

    async def fork(
        self,
        conversation_id: str,
        *,
        agent_id: str | None = None,
        hidden: bool = False,
        message_id: str | None = None,
    ) -> Conversation:
        """A new conversation of the same agent whose history is a copy of the source thread's context
        (up to and including ``message_id``). The source is left as it is."""
        if message_id is not None:
            check_id(message_id, "message", ("query", "message_id"))
        async with self._db.session() as session:
            thread = await resolve_thread(session, conversation_id, agent_id)
            fork = ConversationRow(id=new_id("conv"), agent_id=thread.agent_id, hidden=hidden)
            # The default thread keeps its context state on the agent row.
            source: AgentRow | ConversationRow
            if thread.conversation_id is None:
                source = await get_agent_row(session, thread.agent_id)
            else:
                source = await get_conversation_row(session, thread.conversation_id)
                for field in _FORKED_FIELDS:
                    setattr(fork, field, getattr(source, field))
            fork.context_summary = source.context_summary
            history = select(MessageRow).where(
                _in_thread(thread), MessageRow.seq >= (source.context_start_seq or 0)
            )
            rows = list((await session.scalars(history.order_by(MessageRow.seq))).all())
            if message_id is not None:
                cut = next((i for i, r in enumerate(rows) if r.id == message_id), None)
                if cut is None:
                    raise NotFound(
                        f"message '{message_id}' is not in the context of conversation '{conversation_id}'"
                    )
                rows = rows[: _end_of_step(rows, cut) + 1]
            session.add(fork)
            copies = {row.id: _copy(row, fork.id) for row in rows}
            # Added in order: the copies get their seqs, hence their order, from the source's.
            session.add_all(copies.values())
            # An approval request copied without its answer (pending in the source, or answered there
            # after the cut) is pending in the fork: its tool calls wait for an answer there too.
            pending = _unanswered_approval(rows)
            fork.pending_approval_id = copies[pending].id if pending is not None else None
            await session.flush()
            [view] = await _views(session, [fork])
            return view

    async def list_messages(
        self,
        conversation_id: str,
        page: Page,
        *,
        agent_id: str | None = None,
        include_types: Sequence[str] | None = None,
        include_err: bool | None = None,
    ) -> list[LettaMessage]:
        """The thread's whole history (in and out of its context window)."""
        async with self._db.read_session() as session:
            thread = await resolve_thread(session, conversation_id, agent_id)
            stmt = filter_history(
                select(MessageRow).where(_in_thread(thread)),
                include_types=include_types,
                include_err=include_err,
            )
            rows = await paginate(session, MessageRow, stmt, page)
        return message_views(rows, include_types=include_types)


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
