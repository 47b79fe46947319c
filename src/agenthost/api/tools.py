"""/v1/tools: the server's tool catalogue (create from source, upsert, list, search, update, delete)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from agenthost.api.deps import ContainerDep, page_params
from agenthost.pages import Page
from agenthost.schemas.tools import Tool, ToolCreate, ToolSearch, ToolSearchResult, ToolUpdate

router = APIRouter(prefix="/v1/tools", tags=["tools"])

ListParam = Annotated[list[str] | None, Query()]


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated parameters or comma-separated values, as the SDK may send either."""
    if values is None:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@router.post("/", response_model=Tool)
async def create_tool(body: ToolCreate, container: ContainerDep) -> Tool:
    return await container.tools.create(body)


@router.put("/", response_model=Tool)
async def upsert_tool(body: ToolCreate, container: ContainerDep) -> Tool:
    return await container.tools.upsert(body)


@router.get("/", response_model=list[Tool])
async def list_tools(
    container: ContainerDep,
    page: Annotated[Page, Depends(page_params("desc", 50))],
    name: str | None = None,
    names: ListParam = None,
    tool_ids: ListParam = None,
    search: str | None = None,
    tool_types: ListParam = None,
    exclude_tool_types: ListParam = None,
    return_only_letta_tools: bool = False,
) -> list[Tool]:
    return await container.tools.list_tools(
        page,
        name=name,
        names=_split(names),
        tool_ids=_split(tool_ids),
        search=search,
        tool_types=_split(tool_types),
        exclude_tool_types=_split(exclude_tool_types),
        return_only_letta_tools=return_only_letta_tools,
    )


@router.post("/search", response_model=list[ToolSearchResult])
async def search_tools(body: ToolSearch, container: ContainerDep) -> list[ToolSearchResult]:
    return await container.tools.search(body)


@router.get("/{tool_id}", response_model=Tool)
async def retrieve_tool(tool_id: str, container: ContainerDep) -> Tool:
    return await container.tools.retrieve(tool_id)


@router.patch("/{tool_id}", response_model=Tool)
async def update_tool(tool_id: str, body: ToolUpdate, container: ContainerDep) -> Tool:
    return await container.tools.update(tool_id, body)


@router.delete("/{tool_id}")
async def delete_tool(tool_id: str, container: ContainerDep) -> dict[str, str]:
    await container.tools.delete(tool_id)
    return {"message": f"tool '{tool_id}' deleted"}
