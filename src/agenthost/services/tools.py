"""Tools: the server's catalogue of callable tools (built-in and custom Python functions)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.agent.builtin_tools import BUILTIN_TOOLS
from agenthost.db.database import Database
from agenthost.db.rows import AgentRow, AgentToolRow, ToolRow
from agenthost.db.types import utcnow
from agenthost.errors import Conflict, InvalidArgument, NotFound
from agenthost.ids import check_id, new_id
from agenthost.schemas.tools import Tool, ToolCreate, ToolSearch, ToolSearchResult, ToolUpdate
from agenthost.services.pagination import Page, paginate
from agenthost.settings import Settings
from agenthost.tools.schema import check_json_schema, derive_tool, function_name

# What a built-in tool lets a client change; its code and schema are the server's.
_BUILTIN_MUTABLE = {"tags", "return_char_limit", "default_requires_approval", "metadata"}


async def get_tool_row(session: AsyncSession, tool_id: str) -> ToolRow:
    check_id(tool_id, "tool")
    row = await session.scalar(select(ToolRow).where(ToolRow.id == tool_id))
    if row is None:
        raise NotFound(f"tool '{tool_id}' not found")
    return row


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


def approval_rule(name: str) -> dict[str, Any]:
    return {"type": "requires_approval", "tool_name": name}


def with_approval(rules: list[dict[str, Any]], name: str, required: bool) -> list[dict[str, Any]]:
    """The agent's rules with the tool's ``requires_approval`` rule added or removed."""
    kept = [r for r in rules if not (r.get("type") == "requires_approval" and r.get("tool_name") == name)]
    return [*kept, approval_rule(name)] if required else kept


async def attach_tool_rows(session: AsyncSession, agent: AgentRow, tools: list[ToolRow]) -> None:
    """Attach tools (skipping those already attached), adopting each tool's default approval setting."""
    attached = set(
        (await session.scalars(select(AgentToolRow.tool_id).where(AgentToolRow.agent_id == agent.id))).all()
    )
    position = await session.scalar(
        select(func.coalesce(func.max(AgentToolRow.position), -1)).where(AgentToolRow.agent_id == agent.id)
    )
    rules = list(agent.tool_rules or [])
    for tool in tools:
        if tool.id in attached:
            continue
        attached.add(tool.id)
        position = (position or 0) + 1 if position is not None else 0
        session.add(AgentToolRow(agent_id=agent.id, tool_id=tool.id, position=position))
        if tool.default_requires_approval:
            rules = with_approval(rules, tool.name, True)
    agent.tool_rules = rules


_BUILTINS_LOCK = 0x61676E74746F6F6C  # "agnttool"


class ToolService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def sync_builtins(self) -> None:
        """Make the tools table hold every built-in tool as this version of the server defines it."""
        async with self._db.session() as session:
            if not self._db.is_sqlite:
                # Processes starting together (API servers, workers) take turns: each sees the rows the
                # one before it inserted, instead of inserting them again.
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _BUILTINS_LOCK})
            existing = {
                r.id: r
                for r in (
                    await session.scalars(select(ToolRow).where(ToolRow.tool_type.like("letta%")))
                ).all()
            }
            for tool in BUILTIN_TOOLS.values():
                row = existing.get(tool.id)
                if row is None:
                    row = ToolRow(
                        id=tool.id,
                        name=tool.name,
                        tags=[],
                        return_char_limit=self._settings.tool_return_char_limit,
                        default_requires_approval=False,
                        enable_parallel_execution=False,
                    )
                    session.add(row)
                row.description = tool.description
                row.tool_type = tool.tool_type
                row.source_type = "python"
                row.json_schema = tool.json_schema

    async def create(self, body: ToolCreate) -> Tool:
        async with self._db.session() as session:
            row = ToolRow(id=new_id("tool"), tags=[], metadata_=None)
            self._apply_source(row, body.model_dump(exclude_unset=True), creating=True)
            session.add(row)
            await self._flush_unique(session, row.name)
            return tool_view(row)

    async def upsert(self, body: ToolCreate) -> Tool:
        """Create the tool, or replace the custom tool of the same function name."""
        fields = body.model_dump(exclude_unset=True)
        name = function_name(body.source_code)
        async with self._db.session() as session:
            row = await session.scalar(select(ToolRow).where(ToolRow.name == name).with_for_update())
            if row is None:
                row = ToolRow(id=new_id("tool"), tags=[], metadata_=None)
                session.add(row)
                self._apply_source(row, fields, creating=True)
            else:
                if row.tool_type != "custom":
                    raise Conflict(f"'{name}' is a built-in tool; choose another function name")
                self._apply_source(row, fields, creating=False)
                row.updated_at = utcnow()
            await self._flush_unique(session, row.name)
            return tool_view(row)

    async def retrieve(self, tool_id: str) -> Tool:
        async with self._db.read_session() as session:
            return tool_view(await get_tool_row(session, tool_id))

    async def list_tools(
        self,
        page: Page,
        *,
        name: str | None = None,
        names: Sequence[str] | None = None,
        tool_ids: Sequence[str] | None = None,
        search: str | None = None,
        tool_types: Sequence[str] | None = None,
        exclude_tool_types: Sequence[str] | None = None,
        return_only_letta_tools: bool = False,
    ) -> list[Tool]:
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
        if return_only_letta_tools:
            stmt = stmt.where(ToolRow.tool_type.like("letta%"))
        async with self._db.read_session() as session:
            return [tool_view(r) for r in await paginate(session, ToolRow, stmt, page)]

    async def update(self, tool_id: str, body: ToolUpdate) -> Tool:
        fields = body.model_dump(exclude_unset=True)
        async with self._db.session() as session:
            row = await get_tool_row(session, tool_id)
            if row.tool_type != "custom":
                refused = sorted(set(fields) - _BUILTIN_MUTABLE)
                if refused:
                    raise InvalidArgument(
                        f"'{row.name}' is a built-in tool: only {sorted(_BUILTIN_MUTABLE)} can change, "
                        f"not {refused}",
                        loc=("body", refused[0]),
                    )
            if "source_code" in fields or "json_schema" in fields:
                merged = {
                    "source_code": row.source_code,
                    "json_schema": None if "source_code" in fields else row.json_schema,
                    **fields,
                }
                if "description" not in fields and "source_code" in fields:
                    merged.pop("description", None)
                self._apply_source(row, merged, creating=False)
            else:
                self._apply_plain(row, fields)
            row.updated_at = utcnow()
            await self._flush_unique(session, row.name)
            return tool_view(row)

    async def delete(self, tool_id: str) -> None:
        async with self._db.session() as session:
            row = await get_tool_row(session, tool_id)
            if row.tool_type != "custom":
                raise Conflict(f"'{row.name}' is a built-in tool and cannot be deleted; detach it instead")
            await session.delete(row)

    async def search(self, body: ToolSearch) -> list[ToolSearchResult]:
        """Rank tools by the query's words in their name (weighted) and description.

        Tools have no embeddings here, so every ``search_mode`` ranks by text; the score is the share
        of query words found (a name hit counts double).
        """
        stmt = select(ToolRow)
        if body.tool_types:
            stmt = stmt.where(ToolRow.tool_type.in_(body.tool_types))
        async with self._db.read_session() as session:
            rows = list((await session.scalars(stmt.order_by(ToolRow.seq))).all())
        if body.tags:
            wanted = set(body.tags)
            rows = [r for r in rows if wanted & set(r.tags or [])]
        words = [w for w in re.split(r"[^a-z0-9]+", (body.query or "").lower()) if w]
        scored: list[tuple[float, ToolRow]] = []
        for row in rows:
            if not words:
                scored.append((1.0, row))
                continue
            name = row.name.lower()
            text = (row.description or "").lower()
            hits = sum(2.0 if w in name else 1.0 if w in text else 0.0 for w in words)
            if hits:
                scored.append((hits / (2.0 * len(words)), row))
        scored.sort(key=lambda item: -item[0])
        return [
            ToolSearchResult(
                tool=tool_view(row),
                combined_score=score,
                embedded_text=f"{row.name}: {row.description or ''}",
                fts_rank=rank,
            )
            for rank, (score, row) in enumerate(scored[: body.limit], start=1)
        ]

    def _apply_source(self, row: ToolRow, fields: dict[str, Any], *, creating: bool) -> None:
        """Set name, schema and code from ``source_code`` (and an explicit ``json_schema`` if given)."""
        source = fields.get("source_code")
        if not source:
            raise InvalidArgument("source_code is required", loc=("body", "source_code"))
        if fields.get("json_schema") is not None:
            # An explicit schema stands in for the docstring: only the function's name is read.
            name = function_name(source)
            schema = check_json_schema(fields["json_schema"])
            if schema["name"] != name:
                raise InvalidArgument(
                    f"json_schema names '{schema['name']}' but the source defines '{name}'",
                    loc=("body", "json_schema", "name"),
                )
            summary = ""
        else:
            derived = derive_tool(source)
            name, schema, summary = derived.name, dict(derived.json_schema), derived.description
        description = fields.get("description") or schema.get("description") or summary
        schema["description"] = description
        row.name = name
        row.source_code = source
        row.source_type = "python"
        row.tool_type = "custom"
        row.json_schema = schema
        row.description = description
        if creating:
            row.return_char_limit = self._settings.tool_return_char_limit
            row.default_requires_approval = False
            row.enable_parallel_execution = False
        self._apply_plain(row, {k: v for k, v in fields.items() if k not in ("source_code", "json_schema")})

    @staticmethod
    def _apply_plain(row: ToolRow, fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if key in ("source_code", "json_schema", "source_type"):
                continue
            if key == "metadata":
                row.metadata_ = value
            elif key == "tags":
                row.tags = list(dict.fromkeys(value or []))
            elif key in ("pip_requirements", "npm_requirements"):
                setattr(row, key, [dict(r) for r in value] if value is not None else None)
            elif key in ("return_char_limit", "default_requires_approval", "enable_parallel_execution"):
                if value is not None:
                    setattr(row, key, value)
            elif key == "description":
                if value is not None:
                    row.description = value
                    row.json_schema = {**row.json_schema, "description": value}
            elif key == "args_json_schema":
                row.args_json_schema = value

    @staticmethod
    async def _flush_unique(session: AsyncSession, name: str) -> None:
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(
                f"a tool named '{name}' already exists (use PUT /v1/tools/ to replace it)"
            ) from exc


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
