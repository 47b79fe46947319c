"""An agent's tools: which are attached, which need a human's approval, and running one directly."""

from __future__ import annotations

from typing import Any

from agenthost.db import agents as agents_db
from agenthost.db import tools as tools_db
from agenthost.db.database import Database, Session
from agenthost.db.run_store import block_states, save_blocks
from agenthost.db.types import utcnow
from agenthost.errors import NotFound
from agenthost.pages import Page
from agenthost.schemas.tools import Tool, ToolExecutionResult
from agenthost.services.tools import attach_tools, with_approval
from agenthost.tools.executor import AgentTool, ToolContext, ToolExecutor


class AgentToolService:
    def __init__(self, db: Database, executor: ToolExecutor) -> None:
        self._db = db
        self._executor = executor

    async def list_for_agent(self, agent_id: str, page: Page) -> list[Tool]:
        async with self._db.read_session() as session:
            await agents_db.require_agent(session, agent_id)
            return await tools_db.agent_tools_page(session, agent_id, page)

    async def attach(self, agent_id: str, tool_id: str) -> None:
        async with self._db.session() as session:
            agent = await agents_db.get_agent_config(session, agent_id, for_update=True)
            tool = await tools_db.get_tool(session, tool_id)
            rules = await attach_tools(session, agent_id, agent.tool_rules, [tool])
            await agents_db.update_agent(session, agent_id, {"tool_rules": rules, "updated_at": utcnow()})

    async def detach(self, agent_id: str, tool_id: str) -> None:
        async with self._db.session() as session:
            agent = await agents_db.get_agent_config(session, agent_id, for_update=True)
            tool = await tools_db.get_tool(session, tool_id)
            if not await tools_db.unlink_tool(session, agent_id, tool_id):
                raise NotFound(f"tool '{tool.name}' is not attached to agent '{agent_id}'")
            rules = with_approval(agent.tool_rules, tool.name, False)
            await agents_db.update_agent(session, agent_id, {"tool_rules": rules, "updated_at": utcnow()})

    async def update_approval(self, agent_id: str, tool_name: str, required: bool) -> None:
        async with self._db.session() as session:
            agent = await agents_db.get_agent_config(session, agent_id, for_update=True)
            await self._attached_by_name(session, agent_id, tool_name)
            rules = with_approval(agent.tool_rules, tool_name, required)
            await agents_db.update_agent(session, agent_id, {"tool_rules": rules, "updated_at": utcnow()})

    async def run(self, agent_id: str, tool_name: str, args: dict[str, Any]) -> ToolExecutionResult:
        """Run one attached tool outside any run, with the agent's environment; memory edits are saved."""
        async with self._db.read_session() as session:
            agent = await agents_db.get_agent_config(session, agent_id)
            tool = await self._attached_by_name(session, agent_id, tool_name)
            blocks = await block_states(session, agent_id)
        context = ToolContext(agent_id=agent_id, blocks=blocks, env=agent.env)
        # A Tool has the attributes of the tool row that AgentTool reads.
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
    async def _attached_by_name(session: Session, agent_id: str, tool_name: str) -> Tool:
        tool = await tools_db.attached_tool(session, agent_id, tool_name)
        if tool is None:
            raise NotFound(f"agent '{agent_id}' has no tool named '{tool_name}'")
        return tool
