"""An agent's message history."""

from __future__ import annotations

from collections.abc import Sequence

from agenthost.db import agents as agents_db
from agenthost.db import messages as messages_db
from agenthost.db.database import Database
from agenthost.pages import Page
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.services.views import shape_views


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
        async with self._db.read_session() as session:
            await agents_db.require_agent(session, agent_id)
            items = await messages_db.agent_history(
                session,
                agent_id,
                page,
                include_types=include_types,
                include_err=include_err,
                use_assistant_message=use_assistant_message,
            )
        return shape_views(
            items,
            include_types=include_types,
            use_assistant_message=use_assistant_message,
            assistant_tool_name=assistant_tool_name,
            assistant_tool_kwarg=assistant_tool_kwarg,
        )
