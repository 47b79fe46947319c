"""Conversations on the wire: create/update bodies and ``Conversation``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from agenthost.schemas.common import WireModel

ArchiveStatus = Literal["unarchived", "archived", "all"]
ConversationOrderBy = Literal["created_at", "last_message_at", "last_run_completion"]


class ConversationCreate(WireModel):
    summary: str | None = None
    description: str | None = None
    # Overrides of the agent's model for this conversation (None: the agent's).
    model: str | None = None
    model_settings: dict[str, Any] | None = None
    context_window_limit: int | None = Field(default=None, gt=0)
    hidden: bool = False


class ConversationUpdate(WireModel):
    summary: str | None = None
    description: str | None = None
    model: str | None = None
    model_settings: dict[str, Any] | None = None
    context_window_limit: int | None = Field(default=None, gt=0)
    archived: bool | None = None
    last_message_at: datetime | None = None

    @field_validator("last_message_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # A timestamp sent without an offset is taken as UTC (the SDK sends what the caller gave it).
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Conversation(BaseModel):
    id: str
    agent_id: str
    summary: str | None = None
    description: str | None = None
    model: str | None = None
    model_settings: dict[str, Any] | None = None
    context_window_limit: int | None = None
    archived: bool = False
    archived_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_message_at: datetime | None = None
    # The messages of this conversation in its context window, oldest first.
    in_context_message_ids: list[str] = Field(default_factory=list)
    # This server has no users: Letta's authorship fields are always null.
    created_by_id: str | None = None
    last_updated_by_id: str | None = None
