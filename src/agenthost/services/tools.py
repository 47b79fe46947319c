"""Tools: the server's catalogue of callable tools (built-in and custom Python functions)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Sequence
from typing import Any

from agenthost.db import tools as tools_db
from agenthost.db.database import ConstraintViolation, Database, Session
from agenthost.db.types import utcnow
from agenthost.errors import Conflict, InvalidArgument
from agenthost.ids import new_id
from agenthost.pages import Page
from agenthost.schemas.tools import Tool, ToolCreate, ToolSearch, ToolSearchResult, ToolUpdate
from agenthost.settings import Settings
from agenthost.tools.builtin import BUILTIN_TOOLS
from agenthost.tools.schema import check_json_schema, derive_tool, function_name

# What a built-in tool lets a client change; its code and schema are the server's.
_BUILTIN_MUTABLE = {"tags", "return_char_limit", "default_requires_approval", "metadata"}


def approval_rule(name: str) -> dict[str, Any]:
    return {"type": "requires_approval", "tool_name": name}


def with_approval(rules: list[dict[str, Any]], name: str, required: bool) -> list[dict[str, Any]]:
    """The agent's rules with the tool's ``requires_approval`` rule added or removed."""
    kept = [r for r in rules if not (r.get("type") == "requires_approval" and r.get("tool_name") == name)]
    return [*kept, approval_rule(name)] if required else kept


async def attach_tools(
    session: Session, agent_id: str, rules: list[dict[str, Any]], tools: list[Tool]
) -> list[dict[str, Any]]:
    """Attach tools (skipping those already attached); ``rules`` with each attached tool's default
    approval setting adopted."""
    linked = await tools_db.link_tools(session, agent_id, [t.id for t in tools])
    for tool in tools:
        if tool.id in linked:
            linked.discard(tool.id)
            if tool.default_requires_approval:
                rules = with_approval(rules, tool.name, True)
    return rules


class ToolService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def sync_builtins(self) -> None:
        """Make the tools table hold every built-in tool as this version of the server defines it."""
        async with self._db.session() as session:
            await tools_db.sync_builtins(
                session,
                BUILTIN_TOOLS.values(),
                return_char_limit=self._settings.tool_return_char_limit,
                serialise=not self._db.is_sqlite,
            )

    async def create(self, body: ToolCreate) -> Tool:
        fields = self._source_fields(body.model_dump(exclude_unset=True), creating=True)
        async with self._db.session() as session:
            return await self._unique(tools_db.insert_tool(session, new_id("tool"), fields), fields["name"])

    async def upsert(self, body: ToolCreate) -> Tool:
        """Create the tool, or replace the custom tool of the same function name."""
        fields = body.model_dump(exclude_unset=True)
        name = function_name(body.source_code)
        async with self._db.session() as session:
            tool = await tools_db.tool_named(session, name, for_update=True)
            if tool is None:
                new = self._source_fields(fields, creating=True)
                return await self._unique(tools_db.insert_tool(session, new_id("tool"), new), new["name"])
            if tool.tool_type != "custom":
                raise Conflict(f"'{name}' is a built-in tool; choose another function name")
            changes = {**self._source_fields(fields, creating=False), "updated_at": utcnow()}
            return await self._unique(tools_db.update_tool(session, tool.id, changes), changes["name"])

    async def retrieve(self, tool_id: str) -> Tool:
        async with self._db.read_session() as session:
            return await tools_db.get_tool(session, tool_id)

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
        async with self._db.read_session() as session:
            return await tools_db.list_tools(
                session,
                page,
                name=name,
                names=names,
                tool_ids=tool_ids,
                search=search,
                tool_types=tool_types,
                exclude_tool_types=exclude_tool_types,
                letta_only=return_only_letta_tools,
            )

    async def update(self, tool_id: str, body: ToolUpdate) -> Tool:
        fields = body.model_dump(exclude_unset=True)
        async with self._db.session() as session:
            tool = await tools_db.get_tool(session, tool_id)
            if tool.tool_type != "custom":
                refused = sorted(set(fields) - _BUILTIN_MUTABLE)
                if refused:
                    raise InvalidArgument(
                        f"'{tool.name}' is a built-in tool: only {sorted(_BUILTIN_MUTABLE)} can change, "
                        f"not {refused}",
                        loc=("body", refused[0]),
                    )
            if "source_code" in fields or "json_schema" in fields:
                merged = {
                    "source_code": tool.source_code,
                    "json_schema": None if "source_code" in fields else tool.json_schema,
                    **fields,
                }
                if "description" not in fields and "source_code" in fields:
                    merged.pop("description", None)
                changes = self._source_fields(merged, creating=False)
            else:
                changes = _plain_fields(fields, tool.json_schema or {})
            changes["updated_at"] = utcnow()
            name = changes.get("name", tool.name)
            return await self._unique(tools_db.update_tool(session, tool_id, changes), name)

    async def delete(self, tool_id: str) -> None:
        async with self._db.session() as session:
            tool = await tools_db.get_tool(session, tool_id)
            if tool.tool_type != "custom":
                raise Conflict(f"'{tool.name}' is a built-in tool and cannot be deleted; detach it instead")
            await tools_db.delete_tool(session, tool_id)

    async def search(self, body: ToolSearch) -> list[ToolSearchResult]:
        """Rank tools by the query's words in their name (weighted) and description.

        Tools have no embeddings here, so every ``search_mode`` ranks by text; the score is the share
        of query words found (a name hit counts double).
        """
        async with self._db.read_session() as session:
            tools = await tools_db.all_tools(session, body.tool_types)
        if body.tags:
            wanted = set(body.tags)
            tools = [t for t in tools if wanted & set(t.tags or [])]
        words = [w for w in re.split(r"[^a-z0-9]+", (body.query or "").lower()) if w]
        scored: list[tuple[float, Tool]] = []
        for tool in tools:
            if not words:
                scored.append((1.0, tool))
                continue
            name = tool.name.lower()
            text = (tool.description or "").lower()
            hits = sum(2.0 if w in name else 1.0 if w in text else 0.0 for w in words)
            if hits:
                scored.append((hits / (2.0 * len(words)), tool))
        scored.sort(key=lambda item: -item[0])
        return [
            ToolSearchResult(
                tool=tool,
                combined_score=score,
                embedded_text=f"{tool.name}: {tool.description or ''}",
                fts_rank=rank,
            )
            for rank, (score, tool) in enumerate(scored[: body.limit], start=1)
        ]

    def _source_fields(self, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """Name, schema and code from ``source_code`` (and an explicit ``json_schema`` if given), with
        the other fields sent."""
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
        out: dict[str, Any] = {
            "name": name,
            "source_code": source,
            "source_type": "python",
            "tool_type": "custom",
            "json_schema": schema,
            "description": description,
        }
        if creating:
            out["return_char_limit"] = self._settings.tool_return_char_limit
            out["default_requires_approval"] = False
            out["enable_parallel_execution"] = False
        plain = {k: v for k, v in fields.items() if k not in ("source_code", "json_schema")}
        return {**out, **_plain_fields(plain, schema)}

    @staticmethod
    async def _unique(saving: Awaitable[Tool], name: str) -> Tool:
        # Tool names are unique (the LLM calls tools by name): the database says when one is taken.
        try:
            return await saving
        except ConstraintViolation as exc:
            raise Conflict(
                f"a tool named '{name}' already exists (use PUT /v1/tools/ to replace it)"
            ) from exc


def _plain_fields(fields: dict[str, Any], json_schema: dict[str, Any]) -> dict[str, Any]:
    """The fields set as sent (``json_schema``: the tool's, whose description follows its own)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("source_code", "json_schema", "source_type"):
            continue
        if key in ("metadata", "args_json_schema"):
            out[key] = value
        elif key == "tags":
            out["tags"] = list(dict.fromkeys(value or []))
        elif key in ("pip_requirements", "npm_requirements"):
            out[key] = [dict(r) for r in value] if value is not None else None
        elif key in ("return_char_limit", "default_requires_approval", "enable_parallel_execution"):
            if value is not None:
                out[key] = value
        elif key == "description":
            if value is not None:
                out["description"] = value
                json_schema = {**json_schema, "description": value}
                out["json_schema"] = json_schema
    return out
