"""Queries on agents: their row, tags, and the ``AgentState`` wire view."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.blocks import agent_block_rows, block_view
from agenthost.db.messages import pending_approval_view
from agenthost.db.pagination import paginate
from agenthost.db.rows import (
    AgentBlockRow,
    AgentRow,
    AgentTagRow,
    AgentToolRow,
    BlockRow,
    MessageRow,
    ToolRow,
)
from agenthost.db.tools import tool_view
from agenthost.db.types import utcnow
from agenthost.errors import NotFound
from agenthost.ids import check_id
from agenthost.pages import Page
from agenthost.schemas.agents import AgentState, EnvVar, LlmConfig, Memory
from agenthost.schemas.letta_messages import ApprovalRequestMessage

# The endpoint type (``openai``, ``anthropic``, ...) of a provider name, for ``llm_config``.
EndpointType = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """What use cases read of an agent besides its wire state."""

    id: str
    system: str
    tool_rules: list[dict[str, Any]]
    env: dict[str, str]
    embedding: str | None
    timezone: str | None


@dataclass(frozen=True, slots=True)
class NewAgent:
    id: str
    name: str
    agent_type: str
    system: str
    description: str | None
    model: str
    context_window: int
    max_tokens: int | None
    embedding: str | None
    tool_rules: list[dict[str, Any]]
    env: dict[str, str]
    metadata: dict[str, Any] | None
    timezone: str | None
    message_buffer_autoclear: bool


async def get_agent_row(session: AsyncSession, agent_id: str, *, for_update: bool = False) -> AgentRow:
    check_id(agent_id, "agent")
    stmt = select(AgentRow).where(AgentRow.id == agent_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"agent '{agent_id}' not found")
    return row


async def require_agent(session: AsyncSession, agent_id: str, *, for_update: bool = False) -> None:
    """404 unless the agent exists; ``for_update`` locks it until the transaction ends."""
    await get_agent_row(session, agent_id, for_update=for_update)


async def get_agent_config(session: AsyncSession, agent_id: str, *, for_update: bool = False) -> AgentConfig:
    row = await get_agent_row(session, agent_id, for_update=for_update)
    return AgentConfig(
        id=row.id,
        system=row.system,
        tool_rules=list(row.tool_rules or []),
        env=dict(row.tool_exec_environment_variables or {}),
        embedding=row.embedding,
        timezone=row.timezone,
    )


async def agent_exists(session: AsyncSession, agent_id: str, *, for_update: bool = False) -> bool:
    stmt = select(AgentRow.id).where(AgentRow.id == agent_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt) is not None


async def agent_system(session: AsyncSession, agent_id: str) -> str | None:
    """The agent's system prompt template; None if the agent is gone."""
    return await session.scalar(select(AgentRow.system).where(AgentRow.id == agent_id))


async def insert_agent(session: AsyncSession, new: NewAgent) -> None:
    session.add(
        AgentRow(
            id=new.id,
            name=new.name,
            agent_type=new.agent_type,
            system=new.system,
            description=new.description,
            model=new.model,
            context_window=new.context_window,
            max_tokens=new.max_tokens,
            embedding=new.embedding,
            tool_rules=new.tool_rules,
            tool_exec_environment_variables=new.env,
            metadata_=new.metadata,
            timezone=new.timezone,
            message_buffer_autoclear=new.message_buffer_autoclear,
        )
    )
    await session.flush()


async def update_agent(session: AsyncSession, agent_id: str, changes: dict[str, Any]) -> None:
    """Set the agent's columns (``metadata`` and ``env`` by those names) and flush."""
    row = await get_agent_row(session, agent_id)
    for key, value in changes.items():
        column = {"metadata": "metadata_", "env": "tool_exec_environment_variables"}.get(key, key)
        setattr(row, column, value)
    await session.flush()


async def touch_agent(session: AsyncSession, agent_id: str) -> None:
    """Mark the agent updated (its links to blocks or tools changed, not its own columns)."""
    await update_agent(session, agent_id, {"updated_at": utcnow()})


async def add_tags(session: AsyncSession, agent_id: str, tags: Sequence[str]) -> None:
    """Tag the agent (repeated tags count once), then flush: what was added so far is written."""
    for tag in dict.fromkeys(tags):
        session.add(AgentTagRow(agent_id=agent_id, tag=tag))
    await session.flush()


async def replace_tags(session: AsyncSession, agent_id: str, tags: Sequence[str]) -> None:
    await session.execute(delete(AgentTagRow).where(AgentTagRow.agent_id == agent_id))
    await add_tags(session, agent_id, tags)


async def delete_agent(session: AsyncSession, agent_id: str) -> None:
    """Delete the agent (404 if there is none) with the blocks attached to it alone; shared blocks stay."""
    row = await get_agent_row(session, agent_id, for_update=True)
    block_ids = [b.id for b in await agent_block_rows(session, agent_id)]
    await session.delete(row)
    await session.flush()
    for block_id in block_ids:
        still_used = await session.scalar(
            select(func.count()).select_from(AgentBlockRow).where(AgentBlockRow.block_id == block_id)
        )
        if not still_used:
            await session.execute(delete(BlockRow).where(BlockRow.id == block_id))


async def agent_state(
    session: AsyncSession,
    agent_id: str,
    include: Sequence[str],
    *,
    endpoint_type: EndpointType,
) -> AgentState:
    """The agent's wire state (404 if there is none), with the parts ``include`` names."""
    row = await get_agent_row(session, agent_id)
    return await _state(session, row, include, endpoint_type)


async def list_agents(
    session: AsyncSession,
    page: Page,
    include: Sequence[str],
    *,
    endpoint_type: EndpointType,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    match_all_tags: bool = False,
    query_text: str | None = None,
    last_stop_reason: str | None = None,
) -> list[AgentState]:
    """One page of agents in creation order (the only key that is unique, stable and never null)."""
    stmt = select(AgentRow)
    if name is not None:
        stmt = stmt.where(AgentRow.name == name)
    if query_text:
        stmt = stmt.where(func.lower(AgentRow.name).contains(query_text.lower(), autoescape=True))
    if last_stop_reason is not None:
        stmt = stmt.where(AgentRow.last_stop_reason == last_stop_reason)
    if tags:
        tagged = (
            select(AgentTagRow.agent_id).where(AgentTagRow.tag.in_(list(tags))).group_by(AgentTagRow.agent_id)
        )
        if match_all_tags:
            tagged = tagged.having(func.count() == len(set(tags)))
        stmt = stmt.where(AgentRow.id.in_(tagged))
    rows = await paginate(session, AgentRow, stmt, page)
    return [await _state(session, row, include, endpoint_type) for row in rows]


async def _state(
    session: AsyncSession,
    row: AgentRow,
    include: Sequence[str],
    endpoint_type: EndpointType,
) -> AgentState:
    blocks = (
        [block_view(b) for b in await agent_block_rows(session, row.id)] if "agent.blocks" in include else []
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
            EnvVar(key=k, value=v, agent_id=row.id) for k, v in row.tool_exec_environment_variables.items()
        ]
    return AgentState(
        id=row.id,
        name=row.name,
        agent_type=row.agent_type,
        system=row.system,
        model=row.model,
        llm_config=LlmConfig(
            model=model,
            model_endpoint_type=endpoint_type(provider),
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
