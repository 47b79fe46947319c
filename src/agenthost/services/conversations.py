"""Conversations: threads of one agent, each with its own message history.

Create, read, list, update, delete, fork, and the message history of a thread. Sending messages to a
conversation is the run path's business (``runs/service.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agenthost.db import agents as agents_db
from agenthost.db import conversations as conversations_db
from agenthost.db import messages as messages_db
from agenthost.db.database import Database
from agenthost.db.types import utcnow
from agenthost.errors import InvalidArgument, NotFound
from agenthost.ids import check_id, new_id
from agenthost.llm.providers import Providers
from agenthost.pages import Page
from agenthost.schemas.conversations import (
    ArchiveStatus,
    Conversation,
    ConversationCreate,
    ConversationOrderBy,
    ConversationUpdate,
)
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.services.threads import resolve_thread
from agenthost.services.views import shape_views


class ConversationService:
    def __init__(self, db: Database, providers: Providers) -> None:
        self._db = db
        self._providers = providers

    async def create(self, agent_id: str, body: ConversationCreate) -> Conversation:
        check_id(agent_id, "agent", ("query", "agent_id"))
        if body.model is not None:
            self._providers.resolve(body.model, loc=("body", "model"))
        async with self._db.session() as session:
            await agents_db.require_agent(session, agent_id)
            return await conversations_db.insert_conversation(session, new_id("conv"), agent_id, body)

    async def retrieve(self, conversation_id: str) -> Conversation:
        async with self._db.read_session() as session:
            return await conversations_db.get_conversation(session, conversation_id)

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
        if agent_id is not None:
            check_id(agent_id, "agent", ("query", "agent_id"))
        async with self._db.read_session() as session:
            if agent_id is not None:
                await agents_db.require_agent(session, agent_id)
            return await conversations_db.list_conversations(
                session,
                page,
                agent_id=agent_id,
                archive_status=archive_status,
                summary_search=summary_search,
                order_by=order_by,
            )

    async def update(self, conversation_id: str, body: ConversationUpdate) -> Conversation:
        fields = body.model_dump(exclude_unset=True)
        if fields.get("model") is not None:
            self._providers.resolve(fields["model"], loc=("body", "model"))
        async with self._db.session() as session:
            archived = await conversations_db.conversation_archived(session, conversation_id, for_update=True)
            changes: dict[str, Any] = {}
            for key, value in fields.items():
                if key == "archived":
                    if value is None:
                        raise InvalidArgument("archived cannot be null", loc=("body", "archived"))
                    if value != archived:
                        changes["archived_at"] = utcnow() if value else None
                changes[key] = value
            return await conversations_db.update_conversation(session, conversation_id, changes)

    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation with its messages; its runs stay (they name the conversation)."""
        async with self._db.session() as session:
            await conversations_db.delete_conversation(session, conversation_id)

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
            forked = await conversations_db.fork(
                session, thread.agent_id, thread.conversation_id, hidden=hidden, message_id=message_id
            )
            if forked is None:
                raise NotFound(
                    f"message '{message_id}' is not in the context of conversation '{conversation_id}'"
                )
            return forked

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
            items = await messages_db.thread_history_page(
                session,
                thread,
                page,
                include_types=include_types,
                include_err=include_err,
            )
        return shape_views(items, include_types=include_types)
