"""Executing one tool call: built-ins in the server (memory, searches), custom tools in the sandbox.

Whatever happens, a call ends as a ``ToolOutcome`` the LLM can read; nothing a tool does raises into
the loop (cancellation aside).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from agenthost.errors import AgentHostError
from agenthost.llm.base import ToolSpec
from agenthost.tools.builtin import BUILTIN_TOOLS
from agenthost.tools.memory import BlockState, ToolFailed, run_builtin
from agenthost.tools.sandbox import SandboxResult

SearchFn = Callable[[str, str, list[str] | None, int], Awaitable[list[dict[str, Any]]]]
_ARCHIVAL = ("archival_memory_insert", "archival_memory_search")


class ToolRunner(Protocol):
    """Runs a custom tool's source (the process sandbox, ``tools/sandbox/``)."""

    async def run(
        self,
        source_code: str,
        function_name: str,
        args: dict[str, Any],
        env: dict[str, str],
        *,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
    ) -> SandboxResult: ...


class ArchivalMemory(Protocol):
    """What the archival tools need from the passage store (``services.passages.PassageService``)."""

    async def insert(
        self, agent_id: str, text: str, tags: list[str] | None = None, metadata: dict[str, Any] | None = None
    ) -> Any: ...

    async def search(
        self,
        agent_id: str,
        query: str,
        top_k: int = 10,
        tags: list[str] | None = None,
        tag_match_mode: Literal["any", "all"] = "any",
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> list[tuple[Any, float]]: ...


@dataclass(frozen=True, slots=True)
class AgentTool:
    """A tool attached to an agent, as the loop needs it."""

    id: str
    name: str
    tool_type: str
    description: str | None
    json_schema: dict[str, Any]
    source_code: str | None
    return_char_limit: int
    enable_parallel_execution: bool

    @classmethod
    def from_row(cls, row: Any) -> AgentTool:
        """From a ``ToolRow`` or a Core row with the same columns."""
        return cls(
            id=row.id,
            name=row.name,
            tool_type=row.tool_type,
            description=row.description,
            json_schema=row.json_schema,
            source_code=row.source_code,
            return_char_limit=row.return_char_limit,
            enable_parallel_execution=row.enable_parallel_execution,
        )

    @property
    def is_custom(self) -> bool:
        return self.tool_type == "custom"

    def spec(self) -> ToolSpec:
        builtin = BUILTIN_TOOLS.get(self.name)
        if builtin is not None and not self.is_custom:
            return builtin.spec()
        params = self.json_schema.get("parameters") or {"type": "object", "properties": {}}
        return ToolSpec(self.name, self.description or self.json_schema.get("description") or "", params)


@dataclass(slots=True)
class ToolContext:
    agent_id: str
    blocks: list[BlockState]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    status: Literal["success", "error"]
    text: str
    stdout: list[str] | None = None
    stderr: list[str] | None = None


class ToolExecutor:
    def __init__(
        self,
        sandbox: ToolRunner,
        archival: ArchivalMemory | None,
        search_messages: SearchFn,
        *,
        timeout_s: float,
        memory_mb: int,
    ) -> None:
        self._sandbox = sandbox
        self._archival = archival
        self._search_messages = search_messages
        self._timeout_s = timeout_s
        self._memory_mb = memory_mb

    async def execute(self, tool: AgentTool, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        try:
            if tool.is_custom:
                outcome = await self._custom(tool, args, ctx)
            elif tool.name in _ARCHIVAL:
                outcome = ToolOutcome("success", await self._archival_call(tool.name, args, ctx))
            elif tool.name in BUILTIN_TOOLS:
                outcome = ToolOutcome(
                    "success", await run_builtin(tool.name, args, ctx.blocks, self._search(ctx))
                )
            else:
                outcome = ToolOutcome("error", f"tool '{tool.name}' has no implementation on this server")
        except ToolFailed as exc:
            outcome = ToolOutcome("error", str(exc))
        except AgentHostError as exc:
            outcome = ToolOutcome("error", f"{tool.name} failed: {exc.message}")
        return _limited(outcome, tool.return_char_limit)

    async def _custom(self, tool: AgentTool, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        if not tool.source_code:
            return ToolOutcome("error", f"tool '{tool.name}' has no source code")
        result = await self._sandbox.run(
            tool.source_code,
            tool.name,
            args,
            ctx.env,
            timeout_s=self._timeout_s,
            memory_mb=self._memory_mb,
        )
        return ToolOutcome(result.status, result.func_return, result.stdout, result.stderr)

    def _search(self, ctx: ToolContext) -> Callable[[str, list[str] | None, int], Awaitable[Any]]:
        async def search(query: str, roles: list[str] | None, limit: int) -> list[dict[str, Any]]:
            return await self._search_messages(ctx.agent_id, query, roles, limit)

        return search

    async def _archival_call(self, name: str, args: dict[str, Any], ctx: ToolContext) -> str:
        if self._archival is None:
            raise ToolFailed("archival memory is not available on this server")
        if name == "archival_memory_insert":
            content = args.get("content")
            if not isinstance(content, str) or not content.strip():
                raise ToolFailed("argument 'content' (a non-empty string) is required")
            await self._archival.insert(ctx.agent_id, content, _tags(args))
            return "Stored in archival memory."
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolFailed("argument 'query' (a non-empty string) is required")
        top_k = args.get("top_k") or 10
        if not isinstance(top_k, int) or top_k < 1:
            raise ToolFailed("top_k must be a positive integer")
        if args.get("tag_match_mode") not in (None, "any", "all"):
            raise ToolFailed("tag_match_mode must be 'any' or 'all'")
        mode: Literal["any", "all"] = "all" if args.get("tag_match_mode") == "all" else "any"
        found = await self._archival.search(
            ctx.agent_id,
            query,
            top_k=min(top_k, 100),
            tags=_tags(args),
            tag_match_mode=mode,
            start_date=_when(args, "start_datetime"),
            end_date=_when(args, "end_datetime"),
        )
        if not found:
            return "No archival memories found."
        return json.dumps(
            [
                {
                    "timestamp": _iso(getattr(p, "created_at", None)),
                    "content": p.text,
                    "tags": list(getattr(p, "tags", None) or []),
                    "relevance": round(score, 4),
                }
                for p, score in found
            ],
            ensure_ascii=False,
        )


def _tags(args: dict[str, Any]) -> list[str] | None:
    tags = args.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ToolFailed("tags must be a list of strings")
    return tags


def _when(args: dict[str, Any], key: str) -> datetime | None:
    value = args.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ToolFailed(f"{key} must be an ISO 8601 string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ToolFailed(f"{key} is not an ISO 8601 date or time: {value!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _limited(outcome: ToolOutcome, limit: int) -> ToolOutcome:
    if len(outcome.text) <= limit:
        return outcome
    note = f"\n[truncated: the tool returned {len(outcome.text)} characters; the limit is {limit}]"
    return ToolOutcome(outcome.status, outcome.text[:limit] + note, outcome.stdout, outcome.stderr)
