"""Agents: create, read, list, update, delete, and the ``AgentState`` view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from agenthost.agent.prompt import DEFAULT_SYSTEM
from agenthost.db import agents as agents_db
from agenthost.db import blocks as blocks_db
from agenthost.db import tools as tools_db
from agenthost.db.database import Database, Session
from agenthost.errors import InvalidArgument
from agenthost.ids import check_id, new_id
from agenthost.llm.providers import Providers
from agenthost.pages import Page
from agenthost.schemas.agents import AgentCreate, AgentState, AgentUpdate
from agenthost.schemas.tools import Tool
from agenthost.services.tools import attach_tools
from agenthost.settings import Settings
from agenthost.tools.builtin import BASE_TOOL_NAMES
from agenthost.tools.rules import validate_tool_rules

ALL_INCLUDES = ("agent.blocks", "agent.tools", "agent.tags", "agent.pending_approval", "agent.secrets")


class AgentService:
    def __init__(self, db: Database, settings: Settings, providers: Providers) -> None:
        self._db = db
        self._settings = settings
        self._providers = providers

    async def create(self, body: AgentCreate) -> AgentState:
        handle = body.model or self._providers.default_handle()
        if handle is None:
            raise InvalidArgument(
                "model is required (a handle like 'openai/gpt-4o-mini'; see GET /v1/models/)",
                loc=("body", "model"),
            )
        self._providers.resolve(handle, loc=("body", "model"))
        rules = validate_tool_rules(body.tool_rules or [])
        labels = [b.label for b in body.memory_blocks or []]
        if len(labels) != len(set(labels)):
            raise InvalidArgument("memory_blocks labels must be unique", loc=("body", "memory_blocks"))
        for i, block in enumerate(body.memory_blocks or []):
            if len(block.value) > block.limit:
                raise InvalidArgument(
                    f"memory block '{block.label}' has {len(block.value)} characters, "
                    f"over its limit of {block.limit}",
                    loc=("body", "memory_blocks", i, "value"),
                )
        agent_id = new_id("agent")
        async with self._db.session() as session:
            await agents_db.insert_agent(
                session,
                agents_db.NewAgent(
                    id=agent_id,
                    name=body.name or f"agent-{agent_id[6:14]}",
                    agent_type=body.agent_type,
                    system=body.system if body.system is not None else DEFAULT_SYSTEM,
                    description=body.description,
                    model=handle,
                    context_window=body.context_window_limit or self._providers.context_window(handle),
                    max_tokens=body.max_tokens,
                    embedding=body.embedding,
                    tool_rules=rules,
                    env={**(body.tool_exec_environment_variables or {}), **(body.secrets or {})},
                    metadata=body.metadata,
                    timezone=body.timezone,
                    message_buffer_autoclear=body.message_buffer_autoclear,
                ),
            )
            tools = await self._requested_tools(session, body)
            with_tools = await attach_tools(session, agent_id, rules, tools)
            if with_tools != rules:
                await agents_db.update_agent(session, agent_id, {"tool_rules": with_tools})
            for position, block in enumerate(body.memory_blocks or []):
                created = await blocks_db.insert_block(session, new_id("block"), block)
                blocks_db.add_link(session, agent_id, created.id, block.label, position)
            for i, block_id in enumerate(body.block_ids or []):
                check_id(block_id, "block", ("body", "block_ids", i))
                existing = await blocks_db.get_block(session, block_id)
                if existing.label in labels:
                    raise InvalidArgument(f"two blocks with the label '{existing.label}'")
                labels.append(existing.label)
                blocks_db.add_link(session, agent_id, block_id, existing.label, len(labels) - 1)
            await agents_db.add_tags(session, agent_id, body.tags or [])
            return await self._state(session, agent_id, ALL_INCLUDES)

    @staticmethod
    async def _requested_tools(session: Session, body: AgentCreate) -> list[Tool]:
        """The base tools (unless left out), then ``tools`` by name and ``tool_ids``, in that order."""
        names = [*(BASE_TOOL_NAMES if body.include_base_tools else ()), *(body.tools or [])]
        by_name = await tools_db.tools_named(session, names)
        for i, name in enumerate(body.tools or []):
            if name not in by_name:
                raise InvalidArgument(
                    f"no tool named '{name}' (see GET /v1/tools/)", loc=("body", "tools", i)
                )
        tools = [by_name[n] for n in names if n in by_name]
        for i, tool_id in enumerate(body.tool_ids or []):
            check_id(tool_id, "tool", ("body", "tool_ids", i))
            tool = await tools_db.find_tool(session, tool_id)
            if tool is None:
                raise InvalidArgument(f"tool '{tool_id}' not found", loc=("body", "tool_ids", i))
            tools.append(tool)
        return tools

    async def retrieve(self, agent_id: str, include: Sequence[str]) -> AgentState:
        async with self._db.read_session() as session:
            return await self._state(session, agent_id, include)

    async def list_agents(
        self,
        page: Page,
        *,
        include: Sequence[str],
        name: str | None = None,
        tags: Sequence[str] | None = None,
        match_all_tags: bool = False,
        query_text: str | None = None,
        last_stop_reason: str | None = None,
        order_by: Literal["created_at", "updated_at", "last_run_completion"] = "created_at",
    ) -> list[AgentState]:
        # Every order_by pages by creation order: the only key that is unique, stable and never null.
        del order_by
        async with self._db.read_session() as session:
            return await agents_db.list_agents(
                session,
                page,
                include,
                endpoint_type=self._providers.endpoint_type,
                name=name,
                tags=tags,
                match_all_tags=match_all_tags,
                query_text=query_text,
                last_stop_reason=last_stop_reason,
            )

    async def update(self, agent_id: str, body: AgentUpdate) -> AgentState:
        fields = body.model_dump(exclude_unset=True)
        if fields.get("model") is not None:
            self._providers.resolve(fields["model"], loc=("body", "model"))
        async with self._db.session() as session:
            agent = await agents_db.get_agent_config(session, agent_id, for_update=True)
            # The rules as the fields before each one left them: tool_ids adds its tools' approval rules
            # to the tool_rules sent before it, and tool_rules sent after it replace them.
            rules = agent.tool_rules
            changes: dict[str, Any] = {}
            for key, value in fields.items():
                if key == "tags":
                    await agents_db.replace_tags(session, agent_id, value or [])
                elif key == "context_window_limit":
                    if value is not None:
                        changes["context_window"] = value
                elif key == "tool_rules":
                    rules = changes["tool_rules"] = validate_tool_rules(value or [])
                elif key in ("tool_exec_environment_variables", "secrets"):
                    changes["env"] = value or {}
                elif key == "tool_ids":
                    rules = changes["tool_rules"] = await self._replace_tools(
                        session, agent_id, rules, value or []
                    )
                elif key in ("name", "system", "model", "message_buffer_autoclear") and value is None:
                    raise InvalidArgument(f"{key} cannot be null", loc=("body", key))
                else:
                    changes[key] = value
            await agents_db.update_agent(session, agent_id, changes)
            return await self._state(session, agent_id, ALL_INCLUDES)

    @staticmethod
    async def _replace_tools(
        session: Session, agent_id: str, rules: list[dict[str, Any]], tool_ids: list[str]
    ) -> list[dict[str, Any]]:
        tools: list[Tool] = []
        for i, tool_id in enumerate(tool_ids):
            check_id(tool_id, "tool", ("body", "tool_ids", i))
            tool = await tools_db.find_tool(session, tool_id)
            if tool is None:
                raise InvalidArgument(f"tool '{tool_id}' not found", loc=("body", "tool_ids", i))
            tools.append(tool)
        await tools_db.unlink_all_tools(session, agent_id)
        return await attach_tools(session, agent_id, rules, tools)

    async def delete(self, agent_id: str) -> None:
        async with self._db.session() as session:
            await agents_db.delete_agent(session, agent_id)

    async def _state(self, session: Session, agent_id: str, include: Sequence[str]) -> AgentState:
        return await agents_db.agent_state(
            session,
            agent_id,
            include,
            endpoint_type=self._providers.endpoint_type,
        )
