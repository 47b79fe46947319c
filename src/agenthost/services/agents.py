"""Agents: create, read, list, update, delete, and the ``AgentState`` view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.agent.builtin_tools import BASE_TOOL_NAMES
from agenthost.agent.prompt import DEFAULT_SYSTEM
from agenthost.db.database import Database
from agenthost.db.rows import (
    AgentBlockRow,
    AgentRow,
    AgentTagRow,
    AgentToolRow,
    BlockRow,
    MessageRow,
    ToolRow,
)
from agenthost.errors import InvalidArgument, NotFound
from agenthost.ids import check_id, new_id
from agenthost.llm.providers import Providers
from agenthost.schemas.agents import AgentCreate, AgentState, AgentUpdate, EnvVar, LlmConfig, Memory
from agenthost.schemas.letta_messages import ApprovalRequestMessage
from agenthost.services.pagination import Page, paginate
from agenthost.services.tools import attach_tool_rows, tool_view
from agenthost.services.views import block_view, pending_approval_view
from agenthost.settings import Settings
from agenthost.tools.rules import validate_tool_rules

ALL_INCLUDES = ("agent.blocks", "agent.tools", "agent.tags", "agent.pending_approval", "agent.secrets")


async def get_agent_row(session: AsyncSession, agent_id: str, *, for_update: bool = False) -> AgentRow:
    check_id(agent_id, "agent")
    stmt = select(AgentRow).where(AgentRow.id == agent_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"agent '{agent_id}' not found")
    return row


async def agent_blocks(session: AsyncSession, agent_id: str) -> list[BlockRow]:
    stmt = (
        select(BlockRow)
        .join(AgentBlockRow, AgentBlockRow.block_id == BlockRow.id)
        .where(AgentBlockRow.agent_id == agent_id)
        .order_by(AgentBlockRow.position, BlockRow.seq)
    )
    return list((await session.scalars(stmt)).all())


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
            row = AgentRow(
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
                tool_exec_environment_variables={
                    **(body.tool_exec_environment_variables or {}),
                    **(body.secrets or {}),
                },
                metadata_=body.metadata,
                timezone=body.timezone,
                message_buffer_autoclear=body.message_buffer_autoclear,
            )
            session.add(row)
            await session.flush()
            await attach_tool_rows(session, row, await self._requested_tools(session, body))
            for position, block in enumerate(body.memory_blocks or []):
                block_row = BlockRow(
                    id=new_id("block"),
                    label=block.label,
                    value=block.value,
                    limit=block.limit,
                    description=block.description,
                    read_only=block.read_only,
                    metadata_=block.metadata,
                )
                session.add(block_row)
                await session.flush()
                session.add(
                    AgentBlockRow(
                        agent_id=agent_id, block_id=block_row.id, label=block.label, position=position
                    )
                )
            for i, block_id in enumerate(body.block_ids or []):
                check_id(block_id, "block", ("body", "block_ids", i))
                existing = await session.scalar(select(BlockRow).where(BlockRow.id == block_id))
                if existing is None:
                    raise NotFound(f"block '{block_id}' not found")
                if existing.label in labels:
                    raise InvalidArgument(f"two blocks with the label '{existing.label}'")
                labels.append(existing.label)
                session.add(
                    AgentBlockRow(
                        agent_id=agent_id, block_id=block_id, label=existing.label, position=len(labels) - 1
                    )
                )
            for tag in dict.fromkeys(body.tags or []):
                session.add(AgentTagRow(agent_id=agent_id, tag=tag))
            await session.flush()
            return await self._state(session, row, ALL_INCLUDES)

    @staticmethod
    async def _requested_tools(session: AsyncSession, body: AgentCreate) -> list[ToolRow]:
        """The base tools (unless left out), then ``tools`` by name and ``tool_ids``, in that order."""
        names = [*(BASE_TOOL_NAMES if body.include_base_tools else ()), *(body.tools or [])]
        by_name = {
            t.name: t for t in (await session.scalars(select(ToolRow).where(ToolRow.name.in_(names)))).all()
        }
        for i, name in enumerate(body.tools or []):
            if name not in by_name:
                raise InvalidArgument(
                    f"no tool named '{name}' (see GET /v1/tools/)", loc=("body", "tools", i)
                )
        tools = [by_name[n] for n in names if n in by_name]
        for i, tool_id in enumerate(body.tool_ids or []):
            check_id(tool_id, "tool", ("body", "tool_ids", i))
            tool = await session.scalar(select(ToolRow).where(ToolRow.id == tool_id))
            if tool is None:
                raise InvalidArgument(f"tool '{tool_id}' not found", loc=("body", "tool_ids", i))
            tools.append(tool)
        return tools

    async def retrieve(self, agent_id: str, include: Sequence[str]) -> AgentState:
        async with self._db.read_session() as session:
            row = await get_agent_row(session, agent_id)
            return await self._state(session, row, include)

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
        stmt = select(AgentRow)
        if name is not None:
            stmt = stmt.where(AgentRow.name == name)
        if query_text:
            stmt = stmt.where(func.lower(AgentRow.name).contains(query_text.lower(), autoescape=True))
        if last_stop_reason is not None:
            stmt = stmt.where(AgentRow.last_stop_reason == last_stop_reason)
        if tags:
            tagged = (
                select(AgentTagRow.agent_id)
                .where(AgentTagRow.tag.in_(list(tags)))
                .group_by(AgentTagRow.agent_id)
            )
            if match_all_tags:
                tagged = tagged.having(func.count() == len(set(tags)))
            stmt = stmt.where(AgentRow.id.in_(tagged))
        async with self._db.read_session() as session:
            rows = await paginate(session, AgentRow, stmt, page)
            return [await self._state(session, row, include) for row in rows]

    async def update(self, agent_id: str, body: AgentUpdate) -> AgentState:
        fields = body.model_dump(exclude_unset=True)
        if fields.get("model") is not None:
            self._providers.resolve(fields["model"], loc=("body", "model"))
        async with self._db.session() as session:
            row = await get_agent_row(session, agent_id, for_update=True)
            for key, value in fields.items():
                if key == "tags":
                    await session.execute(delete(AgentTagRow).where(AgentTagRow.agent_id == agent_id))
                    for tag in dict.fromkeys(value or []):
                        session.add(AgentTagRow(agent_id=agent_id, tag=tag))
                elif key == "context_window_limit":
                    if value is not None:
                        row.context_window = value
                elif key == "metadata":
                    row.metadata_ = value
                elif key == "tool_rules":
                    row.tool_rules = validate_tool_rules(value or [])
                elif key in ("tool_exec_environment_variables", "secrets"):
                    row.tool_exec_environment_variables = value or {}
                elif key == "tool_ids":
                    await self._replace_tools(session, row, value or [])
                elif key in ("name", "system", "model", "message_buffer_autoclear") and value is None:
                    raise InvalidArgument(f"{key} cannot be null", loc=("body", key))
                else:
                    setattr(row, key, value)
            await session.flush()
            return await self._state(session, row, ALL_INCLUDES)

    @staticmethod
    async def _replace_tools(session: AsyncSession, row: AgentRow, tool_ids: list[str]) -> None:
        tools: list[ToolRow] = []
        for i, tool_id in enumerate(tool_ids):
            check_id(tool_id, "tool", ("body", "tool_ids", i))
            tool = await session.scalar(select(ToolRow).where(ToolRow.id == tool_id))
            if tool is None:
                raise InvalidArgument(f"tool '{tool_id}' not found", loc=("body", "tool_ids", i))
            tools.append(tool)
        await session.execute(delete(AgentToolRow).where(AgentToolRow.agent_id == row.id))
        await session.flush()
        await attach_tool_rows(session, row, tools)

    async def delete(self, agent_id: str) -> None:
        async with self._db.session() as session:
            row = await get_agent_row(session, agent_id, for_update=True)
            # Blocks attached to this agent alone go with it; shared blocks stay.
            block_ids = [b.id for b in await agent_blocks(session, agent_id)]
            await session.delete(row)
            await session.flush()
            for block_id in block_ids:
                still_used = await session.scalar(
                    select(func.count()).select_from(AgentBlockRow).where(AgentBlockRow.block_id == block_id)
                )
                if not still_used:
                    await session.execute(delete(BlockRow).where(BlockRow.id == block_id))

    async def _state(self, session: AsyncSession, row: AgentRow, include: Sequence[str]) -> AgentState:
        blocks = (
            [block_view(b) for b in await agent_blocks(session, row.id)] if "agent.blocks" in include else []
        )
        tags: list[str] = []
        if "agent.tags" in include:
            tags = list(
                (await session.scalars(select(AgentTagRow.tag).where(AgentTagRow.agent_id == row.id))).all()
            )
        tools = []
        if "agent.tools" in include:
            tools = [
                tool_view(t)
                for t in (
                    await session.scalars(
                        select(ToolRow)
                        .join(AgentToolRow, AgentToolRow.tool_id == ToolRow.id)
                        .where(AgentToolRow.agent_id == row.id)
                        .order_by(AgentToolRow.position)
                    )
                ).all()
            ]
        pending: ApprovalRequestMessage | None = None
        if row.pending_approval_id is not None and "agent.pending_approval" in include:
            msg = await session.scalar(select(MessageRow).where(MessageRow.id == row.pending_approval_id))
            pending = pending_approval_view(msg) if msg is not None else None
        provider, _, model = row.model.partition("/")
        env = None
        if "agent.secrets" in include:
            env = [
                EnvVar(key=k, value=v, agent_id=row.id)
                for k, v in row.tool_exec_environment_variables.items()
            ]
        return AgentState(
            id=row.id,
            name=row.name,
            agent_type=row.agent_type,
            system=row.system,
            model=row.model,
            llm_config=LlmConfig(
                model=model,
                model_endpoint_type=self._providers.endpoint_type(provider),
                provider_name=provider,
                context_window=row.context_window,
                handle=row.model,
                max_tokens=row.max_tokens,
            ),
            blocks=blocks,
            memory=Memory(blocks=blocks, agent_type=row.agent_type),
            tools=tools,
            tags=tags,
            tool_rules=row.tool_rules,
            description=row.description,
            metadata=row.metadata_,
            embedding=row.embedding,
            timezone=row.timezone,
            message_buffer_autoclear=row.message_buffer_autoclear,
            tool_exec_environment_variables=env,
            pending_approval=pending,
            last_run_completion=row.last_run_completion,
            last_run_duration_ms=row.last_run_duration_ms,
            last_stop_reason=row.last_stop_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
