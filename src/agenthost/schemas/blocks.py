"""Memory blocks on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agenthost.schemas.common import WireModel

DEFAULT_BLOCK_LIMIT = 20_000


class BlockCreate(WireModel):
    """A block created with an agent (``memory_blocks``)."""

    label: str = Field(min_length=1, max_length=255)
    value: str
    limit: int = Field(default=DEFAULT_BLOCK_LIMIT, gt=0)
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] | None = None


class BlockUpdate(WireModel):
    value: str | None = None
    limit: int | None = Field(default=None, gt=0)
    label: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    read_only: bool | None = None
    metadata: dict[str, Any] | None = None


class Block(BaseModel):
    id: str
    label: str
    value: str
    limit: int
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
