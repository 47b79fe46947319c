"""/v1/blocks: memory blocks on their own (create, list, retrieve, update, delete) and their agents."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from agenthost.api.deps import ContainerDep, page_params
from agenthost.errors import NotFound
from agenthost.pages import Page
from agenthost.schemas.agents import AgentInclude, AgentState
from agenthost.schemas.blocks import Block, BlockCreate, BlockUpdate
from agenthost.services.blocks import BlockFilters

router = APIRouter(prefix="/v1/blocks", tags=["blocks"])

# The constraints Letta's OpenAPI document puts on these parameters.
LabelParam = Annotated[str | None, Query(min_length=1, max_length=50, pattern=r"^[a-zA-Z0-9_/-]+$")]
SearchParam = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.post("/", response_model=Block)
async def create_block(body: BlockCreate, container: ContainerDep) -> Block:
    return await container.blocks.create(body)


@router.get("/", response_model=list[Block])
async def list_blocks(
    container: ContainerDep,
    page: Annotated[Page, Depends(page_params("asc", 50))],
    label: LabelParam = None,
    label_search: LabelParam = None,
    value_search: SearchParam = None,
    description_search: SearchParam = None,
    connected_to_agents_count_gt: int | None = None,
    connected_to_agents_count_lt: int | None = None,
    connected_to_agents_count_eq: Annotated[list[int] | None, Query()] = None,
    templates_only: bool = False,
    name: Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[a-zA-Z0-9 _-]+$")] = None,
    tags: Annotated[list[str] | None, Query()] = None,
    match_all_tags: bool = False,
    identity_id: str | None = None,
    identifier_keys: Annotated[list[str] | None, Query()] = None,
    project_id: str | None = None,
    order_by: Literal["created_at"] = "created_at",
) -> list[Block]:
    # One project per server: `project_id` narrows nothing. `match_all_tags` only qualifies `tags`.
    del project_id, match_all_tags, order_by
    filters = BlockFilters(
        label=label,
        label_search=label_search,
        value_search=value_search,
        description_search=description_search,
        agents_count_gt=connected_to_agents_count_gt,
        agents_count_lt=connected_to_agents_count_lt,
        agents_count_eq=connected_to_agents_count_eq,
        templates_only=templates_only,
        template_name=name,
        tags=tags,
        identity_id=identity_id,
        identifier_keys=identifier_keys,
    )
    return await container.blocks.list_blocks(page, filters)


@router.get("/{block_id}", response_model=Block)
async def retrieve_block(block_id: str, container: ContainerDep) -> Block:
    return await container.blocks.retrieve(block_id)


@router.patch("/{block_id}", response_model=Block)
async def update_block(block_id: str, body: BlockUpdate, container: ContainerDep) -> Block:
    return await container.blocks.update(block_id, body)


@router.delete("/{block_id}")
async def delete_block(block_id: str, container: ContainerDep) -> dict[str, str]:
    await container.blocks.delete(block_id)
    return {"message": f"block '{block_id}' deleted"}


@router.get("/{block_id}/agents", response_model=list[AgentState])
async def list_block_agents(
    block_id: str,
    container: ContainerDep,
    page: Annotated[Page, Depends(page_params("desc", 50))],
    include: Annotated[list[AgentInclude], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    include_relationships: Annotated[list[str] | None, Query()] = None,
    order_by: Literal["created_at"] = "created_at",
) -> list[AgentState]:
    # `include_relationships` is the pre-1.0 spelling, "no longer supported" by the SDK: ignored.
    del include_relationships, order_by
    agents: list[AgentState] = []
    for agent_id in await container.blocks.agent_ids(block_id, page):
        try:
            agents.append(await container.agents.retrieve(agent_id, list(include)))
        except NotFound:
            continue  # deleted since the page was read
    return agents
