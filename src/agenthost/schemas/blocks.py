"""Memory blocks on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agenthost.schemas.common import WireModel

DEFAULT_BLOCK_LIMIT = 20_000


class BlockCreate(WireModel):
    """A new block: with an agent (``memory_blocks``) or on its own (``POST /v1/blocks/``).

    Letta's template fields (``is_template``, ``template_name``, ``project_id``, ``hidden``, ...) are
    accepted and ignored: this server has no templates and one project.
    """

    label: str = Field(min_length=1, max_length=255)
    value: str
    limit: int = Field(default=DEFAULT_BLOCK_LIMIT, gt=0)
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] | None = None
    # Not stored (blocks have no tags here): /v1/blocks refuses a non-empty list rather than drop it.
    tags: list[str] | None = None


class BlockUpdate(WireModel):
    """A partial update: only the fields sent change (template fields are ignored, as on create)."""

    value: str | None = None
    limit: int | None = Field(default=None, gt=0)
    label: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    read_only: bool | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None


class Block(BaseModel):
    id: str
    label: str
    value: str
    limit: int
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] | None = None
    is_template: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
