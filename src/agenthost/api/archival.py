"""/v1/agents/{agent_id}/archival-memory (an agent's passages) and /v1/passages/search."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from agenthost.api.deps import ContainerDep
from agenthost.errors import InvalidArgument
from agenthost.pages import MAX_PAGE
from agenthost.schemas.common import Order
from agenthost.schemas.passages import (
    ArchivalMemorySearchResponse,
    Passage,
    PassageCreate,
    PassageSearchRequest,
    PassageSearchResult,
    TagMatchMode,
)
from agenthost.services.passages import MAX_TOP_K

router = APIRouter(prefix="/v1/agents/{agent_id}/archival-memory", tags=["archival-memory"])
passages_router = APIRouter(prefix="/v1/passages", tags=["passages"])


@router.post("", response_model=list[Passage])
async def create_passage(agent_id: str, body: PassageCreate, container: ContainerDep) -> list[Passage]:
    # A list because Letta may split a long text into several passages; here it is always one.
    return [await container.passages.insert(agent_id, body.text, body.tags, created_at=body.created_at)]


@router.get("", response_model=list[Passage])
async def list_passages(
    agent_id: str,
    container: ContainerDep,
    after: str | None = None,
    before: str | None = None,
    limit: int | None = Query(default=100, ge=1, le=MAX_PAGE),
    ascending: bool | None = Query(default=None, description="Oldest first (the default) or newest first"),
    order: Order | None = Query(default=None, description="Takes precedence over `ascending`"),
    search: str | None = Query(default=None, description="Only passages whose text contains this"),
) -> list[Passage]:
    up = order == "asc" if order is not None else ascending is not False
    return await container.passages.list_for_agent(
        agent_id, after=after, before=before, limit=limit or 100, ascending=up, search=search
    )


@router.get("/search", response_model=ArchivalMemorySearchResponse)
async def search_archival_memory(
    agent_id: str,
    container: ContainerDep,
    query: str = Query(min_length=1),
    tags: list[str] | None = Query(default=None),
    tag_match_mode: TagMatchMode = "any",
    top_k: int | None = Query(default=None, ge=1, le=MAX_TOP_K),
    start_datetime: datetime | None = None,
    end_datetime: datetime | None = None,
) -> ArchivalMemorySearchResponse:
    return await container.passages.search_view(
        agent_id,
        query,
        top_k=top_k or 10,
        tags=tags,
        tag_match_mode=tag_match_mode,
        start_date=start_datetime,
        end_date=end_datetime,
    )


@router.delete("/{memory_id}")
async def delete_passage(agent_id: str, memory_id: str, container: ContainerDep) -> dict[str, str]:
    await container.passages.delete(agent_id, memory_id)
    return {"message": f"passage '{memory_id}' deleted"}


@passages_router.post("/search", response_model=list[PassageSearchResult])
async def search_passages(body: PassageSearchRequest, container: ContainerDep) -> list[PassageSearchResult]:
    # Scoped to one agent: each agent may embed with its own model, so no single query vector
    # could rank passages across agents.
    if body.archive_id is not None:
        raise InvalidArgument(
            "archives are not supported here; search by agent_id", loc=("body", "archive_id")
        )
    if body.agent_id is None:
        raise InvalidArgument("agent_id is required", loc=("body", "agent_id"))
    if not body.query or not body.query.strip():
        raise InvalidArgument("query is required", loc=("body", "query"))
    found = await container.passages.search(
        body.agent_id,
        body.query,
        top_k=body.limit,
        tags=body.tags,
        tag_match_mode=body.tag_match_mode,
        start_date=body.start_date,
        end_date=body.end_date,
    )
    return [PassageSearchResult(passage=p, score=score) for p, score in found]
