"""/v1/agents/{agent_id}/core-memory/blocks: an agent's memory blocks by label."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from agenthost.api.deps import ContainerDep, page_params
from agenthost.schemas.blocks import Block, BlockUpdate
from agenthost.services.pagination import Page

router = APIRouter(prefix="/v1/agents/{agent_id}/core-memory/blocks", tags=["core-memory"])


@router.get("", response_model=list[Block])
async def list_blocks(
    agent_id: str, container: ContainerDep, page: Annotated[Page, Depends(page_params("asc", 100))]
) -> list[Block]:
    return await container.blocks.list_for_agent(agent_id, page)


@router.get("/{block_label}", response_model=Block)
async def retrieve_block(agent_id: str, block_label: str, container: ContainerDep) -> Block:
    return await container.blocks.retrieve(agent_id, block_label)


@router.patch("/{block_label}", response_model=Block)
async def update_block(agent_id: str, block_label: str, body: BlockUpdate, container: ContainerDep) -> Block:
    return await container.blocks.update(agent_id, block_label, body)
