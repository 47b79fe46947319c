"""/v1/agents/{agent_id}/tools: attach, detach, approval and direct runs of an agent's tools."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from agenthost.api.deps import ContainerDep, page_params
from agenthost.errors import InvalidArgument
from agenthost.pages import Page
from agenthost.schemas.agents import AgentState
from agenthost.schemas.tools import Tool, ToolApproval, ToolExecutionResult, ToolRun
from agenthost.services.agents import ALL_INCLUDES

router = APIRouter(prefix="/v1/agents/{agent_id}/tools", tags=["agent-tools"])


@router.get("", response_model=list[Tool])
async def list_agent_tools(
    agent_id: str, container: ContainerDep, page: Annotated[Page, Depends(page_params("asc", 100))]
) -> list[Tool]:
    return await container.agent_tools.list_for_agent(agent_id, page)


@router.patch("/attach/{tool_id}", response_model=AgentState)
async def attach_tool(agent_id: str, tool_id: str, container: ContainerDep) -> AgentState:
    await container.agent_tools.attach(agent_id, tool_id)
    return await container.agents.retrieve(agent_id, ALL_INCLUDES)


@router.patch("/detach/{tool_id}", response_model=AgentState)
async def detach_tool(agent_id: str, tool_id: str, container: ContainerDep) -> AgentState:
    await container.agent_tools.detach(agent_id, tool_id)
    return await container.agents.retrieve(agent_id, ALL_INCLUDES)


@router.patch("/approval/{tool_name}", response_model=AgentState)
async def update_tool_approval(
    agent_id: str,
    tool_name: str,
    container: ContainerDep,
    body: ToolApproval | None = None,
    requires_approval: Annotated[bool | None, Query(description="Deprecated; send it in the body")] = None,
) -> AgentState:
    required = body.requires_approval if body is not None and body.requires_approval is not None else None
    if required is None:
        required = requires_approval
    if required is None:
        raise InvalidArgument(
            "requires_approval (true or false) is required", loc=("body", "requires_approval")
        )
    await container.agent_tools.update_approval(agent_id, tool_name, required)
    return await container.agents.retrieve(agent_id, ALL_INCLUDES)


@router.post("/{tool_name}/run", response_model=ToolExecutionResult)
async def run_tool(
    agent_id: str, tool_name: str, body: ToolRun, container: ContainerDep
) -> ToolExecutionResult:
    return await container.agent_tools.run(agent_id, tool_name, body.args)
