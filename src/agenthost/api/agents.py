"""/v1/agents: create, retrieve, list, update, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from agenthost.api.deps import ContainerDep, page_params
from agenthost.pages import Page
from agenthost.schemas.agents import AgentCreate, AgentInclude, AgentState, AgentUpdate
from agenthost.schemas.common import StopReason

router = APIRouter(prefix="/v1/agents", tags=["agents"])

Includes = Annotated[list[AgentInclude], Query()]


def _includes(include: list[str], include_relationships: list[str] | None) -> list[str]:
    # `include_relationships` is the older spelling (bare names, e.g. "memory", "tools").
    legacy = {
        "memory": "agent.blocks",
        "blocks": "agent.blocks",
        "tools": "agent.tools",
        "tags": "agent.tags",
    }
    return include + [legacy.get(r, f"agent.{r}") for r in include_relationships or []]


@router.post("/", response_model=AgentState)
async def create_agent(body: AgentCreate, container: ContainerDep) -> AgentState:
    return await container.agents.create(body)


@router.get("/", response_model=list[AgentState])
async def list_agents(
    container: ContainerDep,
    page: Annotated[Page, Depends(page_params("desc", 50))],
    name: str | None = None,
    tags: list[str] | None = Query(default=None),
    match_all_tags: bool = False,
    query_text: str | None = None,
    last_stop_reason: StopReason | None = None,
    include: Includes = [],  # noqa: B006 - FastAPI copies defaults
    include_relationships: list[str] | None = Query(default=None),
    order_by: Literal["created_at", "updated_at", "last_run_completion"] = "created_at",
) -> list[AgentState]:
    return await container.agents.list_agents(
        page,
        include=_includes(list(include), include_relationships),
        name=name,
        tags=tags,
        match_all_tags=match_all_tags,
        query_text=query_text,
        last_stop_reason=last_stop_reason,
        order_by=order_by,
    )


@router.get("/{agent_id}", response_model=AgentState)
async def retrieve_agent(
    agent_id: str,
    container: ContainerDep,
    include: Includes = [],  # noqa: B006
    include_relationships: list[str] | None = Query(default=None),
) -> AgentState:
    return await container.agents.retrieve(agent_id, _includes(list(include), include_relationships))


@router.patch("/{agent_id}", response_model=AgentState)
async def update_agent(agent_id: str, body: AgentUpdate, container: ContainerDep) -> AgentState:
    return await container.agents.update(agent_id, body)


@router.delete("/{agent_id}")
async def delete_agent(agent_id: str, container: ContainerDep) -> dict[str, str]:
    # Live runs of the agent are cancelled first, so no loop keeps writing for a deleted agent.
    await container.cancellation.cancel_for_agent(agent_id, None)
    await container.agents.delete(agent_id)
    return {"message": f"agent '{agent_id}' deleted"}
