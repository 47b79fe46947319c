"""An agent's tools: which are attached, which need a human's approval, and running one directly."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.agent.executor import AgentTool, ToolContext, ToolExecutor
from agenthost.agent.store import block_states, save_blocks
from agenthost.db.database import Database
from agenthost.db.rows import AgentToolRow, ToolRow
from agenthost.db.types import utcnow
from agenthost.errors import NotFound
from agenthost.schemas.tools import Tool, ToolExecutionResult
from agenthost.services.agents import get_agent_row
from agenthost.services.pagination import Page, paginate
from agenthost.services.tools import attach_tool_rows, get_tool_row, tool_view, with_approval


class AgentToolService:
    def __init__(self, db: Database, executor: ToolExecutor) -> None:
        self._db = db
        self._executor = executor

    async def list_for_agent(self, agent_id: str, page: Page) -> list[Tool]:
        async with self._db.read_session() as session:
            await get_agent_row(session, agent_id)
            stmt = (
                select(ToolRow)
                .join(AgentToolRow, AgentToolRow.tool_id == ToolRow.id)
                .where(AgentToolRow.agent_id == agent_id)
            )
            return [tool_view(r) for r in await paginate(session, ToolRow, stmt, page)]

    async def attach(self, agent_id: str, tool_id: str) -> None:
        async with self._db.session() as session:
            agent = await get_agent_row(session, agent_id, for_update=True)
            tool = await get_tool_row(session, tool_id)
            await attach_tool_rows(session, agent, [tool])
            agent.updated_at = utcnow()

    async def detach(self, agent_id: str, tool_id: str) -> None:
        async with self._db.session() as session:
            agent = await get_agent_row(session, agent_id, for_update=True)
            tool = await get_tool_row(session, tool_id)
            deleted = await session.execute(
                delete(AgentToolRow).where(AgentToolRow.agent_id == agent_id, AgentToolRow.tool_id == tool_id)
            )
            if getattr(deleted, "rowcount", 0) == 0:
                raise NotFound(f"tool '{tool.name}' is not attached to agent '{agent_id}'")
            agent.tool_rules = with_approval(list(agent.tool_rules or []), tool.name, False)
            agent.updated_at = utcnow()

    async def update_approval(self, agent_id: str, tool_name: str, required: bool) -> None:
        async with self._db.session() as session:
            agent = await get_agent_row(session, agent_id, for_update=True)
            await self._attached_by_name(session, agent_id, tool_name)
            agent.tool_rules = with_approval(list(agent.tool_rules or []), tool_name, required)
            agent.updated_at = utcnow()

    async def run(self, agent_id: str, tool_name: str, args: dict[str, Any]) -> ToolExecutionResult:
        """Run one attached tool outside any run, with the agent's environment; memory edits are saved."""
        async with self._db.read_session() as session:
            agent = await get_agent_row(session, agent_id)
            tool = await self._attached_by_name(session, agent_id, tool_name)
            blocks = await block_states(session, agent_id)
            env = dict(agent.tool_exec_environment_variables or {})
        context = ToolContext(agent_id=agent_id, blocks=blocks, env=env)
        outcome = await self._executor.execute(AgentTool.from_row(tool), args, context)
        if any(b.changed for b in blocks):
            async with self._db.session() as session:
                # Edits applied to each block's current value: a run editing it meanwhile keeps its edits.
                await save_blocks(session, blocks)
        return ToolExecutionResult(
            status=outcome.status,
            func_return=outcome.text,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
        )

    @staticmethod
    async def _attached_by_name(session: AsyncSession, agent_id: str, tool_name: str) -> ToolRow:
        tool = await session.scalar(
            select(ToolRow)
            .join(AgentToolRow, AgentToolRow.tool_id == ToolRow.id)
            .where(AgentToolRow.agent_id == agent_id, ToolRow.name == tool_name)
        )
        if tool is None:
            raise NotFound(f"agent '{agent_id}' has no tool named '{tool_name}'")
        return tool
