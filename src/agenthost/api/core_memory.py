"""/v1/agents/{agent_id}/core-memory/blocks: an agent's memory blocks by label, and attaching blocks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from agenthost.api.deps import ContainerDep, page_params
from agenthost.pages import Page
from agenthost.schemas.agents import AgentState
from agenthost.schemas.blocks import Block, BlockUpdate
from agenthost.services.agents import ALL_INCLUDES

router = APIRouter(prefix="/v1/agents/{agent_id}/core-memory/blocks", tags=["core-memory"])


@router.get("", response_model=list[Block])
async def list_agent_blocks(
    agent_id: str, container: ContainerDep, page: Annotated[Page, Depends(page_params("asc", 100))]
) -> list[Block]:
    return await container.blocks.list_for_agent(agent_id, page)


# Labels may contain "/" (Letta allows "org/notes"; the SDK sends it as %2F, which arrives decoded), so
# the label routes take the rest of the path, and attach/detach must be declared before them.
@router.patch("/attach/{block_id}", response_model=AgentState)
async def attach_block(agent_id: str, block_id: str, container: ContainerDep) -> AgentState:
    await container.blocks.attach(agent_id, block_id)
    return await container.agents.retrieve(agent_id, ALL_INCLUDES)


@router.patch("/detach/{block_id}", response_model=AgentState)
async def detach_block(agent_id: str, block_id: str, container: ContainerDep) -> AgentState:
    await container.blocks.detach(agent_id, block_id)
    return await container.agents.retrieve(agent_id, ALL_INCLUDES)


@router.get("/{block_label:path}", response_model=Block)
async def retrieve_agent_block(agent_id: str, block_label: str, container: ContainerDep) -> Block:
    return await container.blocks.retrieve_for_agent(agent_id, block_label)


@router.patch("/{block_label:path}", response_model=Block)
async def update_agent_block(
    agent_id: str, block_label: str, body: BlockUpdate, container: ContainerDep
) -> Block:
    return await container.blocks.update_for_agent(agent_id, block_label, body)
