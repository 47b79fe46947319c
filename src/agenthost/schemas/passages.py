"""Archival-memory passages on the wire (letta-client 1.12.1: ``Passage``, ``agents.passages.*``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from agenthost.schemas.common import WireModel

TagMatchMode = Literal["any", "all"]


class PassageCreate(WireModel):
    """``POST /v1/agents/{agent_id}/archival-memory``."""

    text: str
    tags: list[str] | None = None
    created_at: datetime | None = None


class EmbeddingConfig(BaseModel):
    embedding_endpoint_type: str
    embedding_endpoint: str | None = None
    embedding_model: str
    embedding_dim: int
    embedding_chunk_size: int | None = 300
    handle: str | None = None
    batch_size: int = 32


class Passage(BaseModel):
    """One passage of an agent's archival memory."""

    id: str
    text: str
    embedding: list[float] | None = None
    embedding_config: EmbeddingConfig | None = None
    # Passages belong to an agent directly here; Letta's archives are not modelled.
    archive_id: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = Field(default_factory=dict)
    is_deleted: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ArchivalMemorySearchResult(BaseModel):
    id: str
    # The creation time in the agent's timezone (ISO 8601), as the agent's own search tool shows it.
    timestamp: str
    content: str
    tags: list[str] = Field(default_factory=list)


class ArchivalMemorySearchResponse(BaseModel):
    """``GET /v1/agents/{agent_id}/archival-memory/search``."""

    results: list[ArchivalMemorySearchResult]
    count: int


class PassageSearchRequest(WireModel):
    """``POST /v1/passages/search``: here within one agent's archival memory."""

    query: str | None = None
    agent_id: str | None = None
    archive_id: str | None = None
    tags: list[str] | None = None
    tag_match_mode: TagMatchMode = "any"
    limit: int = Field(default=50, ge=1, le=100)
    start_date: datetime | None = None
    end_date: datetime | None = None


class PassageSearchResult(BaseModel):
    passage: Passage
    score: float
    metadata: dict[str, Any] = Field(default_factory=dict)
