"""An agent's message history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select

from agenthost.db.database import Database
from agenthost.db.rows import MessageRow
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.services.agents import get_agent_row
from agenthost.services.pagination import Page, paginate
from agenthost.services.views import message_views


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


class MessageService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_for_agent(
        self,
        agent_id: str,
        page: Page,
        *,
        include_types: Sequence[str] | None = None,
        include_err: bool | None = None,
        use_assistant_message: bool = True,
        assistant_tool_name: str = "send_message",
        assistant_tool_kwarg: str = "message",
    ) -> list[LettaMessage]:
        stmt = filter_history(
            select(MessageRow).where(MessageRow.agent_id == agent_id),
            include_types=include_types,
            include_err=include_err,
            use_assistant_message=use_assistant_message,
        )
        async with self._db.read_session() as session:
            await get_agent_row(session, agent_id)
            rows = await paginate(session, MessageRow, stmt, page)
        return message_views(
            rows,
            include_types=include_types,
            use_assistant_message=use_assistant_message,
            assistant_tool_name=assistant_tool_name,
            assistant_tool_kwarg=assistant_tool_kwarg,
        )
