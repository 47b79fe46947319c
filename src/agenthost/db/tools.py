"""Queries on the tool catalogue and on agents' links to tools (``agent_tools``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.pagination import paginate
from agenthost.db.rows import AgentToolRow, ToolRow
from agenthost.errors import NotFound
from agenthost.ids import check_id
from agenthost.pages import Page
from agenthost.schemas.tools import Tool

_BUILTINS_LOCK = 0x61676E74746F6F6C  # "agnttool"


class BuiltinDefinition(Protocol):
    """A built-in tool as this version of the server defines it."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def tool_type(self) -> str: ...
    @property
    def json_schema(self) -> dict[str, Any]: ...


def tool_view(row: ToolRow) -> Tool:
    return Tool(
        id=row.id,
        name=row.name,
        description=row.description,
        tool_type=row.tool_type,
        source_type=row.source_type,
        source_code=row.source_code,
        json_schema=row.json_schema,
        args_json_schema=row.args_json_schema,
        tags=list(row.tags or []),
        return_char_limit=row.return_char_limit,
        pip_requirements=row.pip_requirements,
        npm_requirements=row.npm_requirements,
        default_requires_approval=row.default_requires_approval,
        enable_parallel_execution=row.enable_parallel_execution,
        metadata=row.metadata_,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def find_tool(session: AsyncSession, tool_id: str) -> Tool | None:
    row = await session.scalar(select(ToolRow).where(ToolRow.id == tool_id))
    return tool_view(row) if row is not None else None


async def get_tool(session: AsyncSession, tool_id: str) -> Tool:
    """The tool (404 if there is none)."""
    return tool_view(await _tool_row(session, tool_id))


async def tool_named(session: AsyncSession, name: str, *, for_update: bool = False) -> Tool | None:
    stmt = select(ToolRow).where(ToolRow.name == name)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    return tool_view(row) if row is not None else None


async def tools_named(session: AsyncSession, names: Sequence[str]) -> dict[str, Tool]:
    """name → tool, for the names that exist."""
    rows = (await session.scalars(select(ToolRow).where(ToolRow.name.in_(names)))).all()
    return {r.name: tool_view(r) for r in rows}


async def insert_tool(session: AsyncSession, tool_id: str, fields: dict[str, Any]) -> Tool:
    """Store a new tool with ``fields`` (wire names) and flush.

    Raises ``ConstraintViolation`` if a tool of the same name exists.
    """
    row = ToolRow(id=tool_id, tags=[], metadata_=None)
    _set(row, fields)
    session.add(row)
    await session.flush()
    return tool_view(row)


async def update_tool(session: AsyncSession, tool_id: str, changes: dict[str, Any]) -> Tool:
    """Set the tool's fields (wire names) and flush.

    Raises ``ConstraintViolation`` if another tool has the new name.
    """
    row = await _tool_row(session, tool_id)
    _set(row, changes)
    await session.flush()
    return tool_view(row)


async def delete_tool(session: AsyncSession, tool_id: str) -> None:
    await session.execute(delete(ToolRow).where(ToolRow.id == tool_id))


async def list_tools(
    session: AsyncSession,
    page: Page,
    *,
    name: str | None = None,
    names: Sequence[str] | None = None,
    tool_ids: Sequence[str] | None = None,
    search: str | None = None,
    tool_types: Sequence[str] | None = None,
    exclude_tool_types: Sequence[str] | None = None,
    letta_only: bool = False,
) -> list[Tool]:
    """One page of the catalogue; ``search`` is a case-insensitive substring of the name."""
    stmt = select(ToolRow)
    if name is not None:
        stmt = stmt.where(ToolRow.name == name)
    if names:
        stmt = stmt.where(ToolRow.name.in_(list(names)))
    if tool_ids:
        stmt = stmt.where(ToolRow.id.in_(list(tool_ids)))
    if search:
        stmt = stmt.where(ToolRow.name.ilike(f"%{_escape_like(search)}%", escape="\\"))
    if tool_types:
        stmt = stmt.where(ToolRow.tool_type.in_(list(tool_types)))
    if exclude_tool_types:
        stmt = stmt.where(ToolRow.tool_type.not_in(list(exclude_tool_types)))
    if letta_only:
        stmt = stmt.where(ToolRow.tool_type.like("letta%"))
    return [tool_view(r) for r in await paginate(session, ToolRow, stmt, page)]


async def all_tools(session: AsyncSession, tool_types: Sequence[str] | None = None) -> list[Tool]:
    """Every tool (of ``tool_types`` if given), in creation order."""
    stmt = select(ToolRow)
    if tool_types:
        stmt = stmt.where(ToolRow.tool_type.in_(tool_types))
    return [tool_view(r) for r in (await session.scalars(stmt.order_by(ToolRow.seq))).all()]


async def sync_builtins(
    session: AsyncSession,
    builtins: Iterable[BuiltinDefinition],
    *,
    return_char_limit: int,
    serialise: bool,
) -> None:
    """Make the tools table hold every built-in tool as ``builtins`` define it.

    ``serialise`` (PostgreSQL): processes starting together (API servers, workers) take turns, each
    seeing the rows the one before it inserted instead of inserting them again.
    """
    if serialise:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _BUILTINS_LOCK})
    existing = {
        r.id: r
        for r in (await session.scalars(select(ToolRow).where(ToolRow.tool_type.like("letta%")))).all()
    }
    for tool in builtins:
        row = existing.get(tool.id)
        if row is None:
            row = ToolRow(
                id=tool.id,
                name=tool.name,
                tags=[],
                return_char_limit=return_char_limit,
                default_requires_approval=False,
                enable_parallel_execution=False,
            )
            session.add(row)
        row.description = tool.description
        row.tool_type = tool.tool_type
        row.source_type = "python"
        row.json_schema = tool.json_schema


# -- agents' tools ---------------------------------------------------------------------------------


async def agent_tools_page(session: AsyncSession, agent_id: str, page: Page) -> list[Tool]:
    stmt = (
        select(ToolRow)
        .join(AgentToolRow, AgentToolRow.tool_id == ToolRow.id)
        .where(AgentToolRow.agent_id == agent_id)
    )
    return [tool_view(r) for r in await paginate(session, ToolRow, stmt, page)]


async def attached_tool(session: AsyncSession, agent_id: str, name: str) -> Tool | None:
    """The agent's attached tool called ``name``, if it has one."""
    row = await session.scalar(
        select(ToolRow)
        .join(AgentToolRow, AgentToolRow.tool_id == ToolRow.id)
        .where(AgentToolRow.agent_id == agent_id, ToolRow.name == name)
    )
    return tool_view(row) if row is not None else None


async def link_tools(session: AsyncSession, agent_id: str, tool_ids: Sequence[str]) -> set[str]:
    """Attach the tools after the agent's others, skipping those already attached; the ids attached."""
    attached = set(
        (await session.scalars(select(AgentToolRow.tool_id).where(AgentToolRow.agent_id == agent_id))).all()
    )
    position = await session.scalar(
        select(func.coalesce(func.max(AgentToolRow.position), -1)).where(AgentToolRow.agent_id == agent_id)
    )
    linked: set[str] = set()
    for tool_id in tool_ids:
        if tool_id in attached:
            continue
        attached.add(tool_id)
        linked.add(tool_id)
        position = (position or 0) + 1 if position is not None else 0
        session.add(AgentToolRow(agent_id=agent_id, tool_id=tool_id, position=position))
    return linked


async def unlink_tool(session: AsyncSession, agent_id: str, tool_id: str) -> bool:
    """Detach the tool from the agent; False if it was not attached."""
    deleted = await session.execute(
        delete(AgentToolRow).where(AgentToolRow.agent_id == agent_id, AgentToolRow.tool_id == tool_id)
    )
    return getattr(deleted, "rowcount", 0) != 0


async def unlink_all_tools(session: AsyncSession, agent_id: str) -> None:
    await session.execute(delete(AgentToolRow).where(AgentToolRow.agent_id == agent_id))
    await session.flush()


async def _tool_row(session: AsyncSession, tool_id: str) -> ToolRow:
    check_id(tool_id, "tool")
    row = await session.scalar(select(ToolRow).where(ToolRow.id == tool_id))
    if row is None:
        raise NotFound(f"tool '{tool_id}' not found")
    return row


def _set(row: ToolRow, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        setattr(row, "metadata_" if key == "metadata" else key, value)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
