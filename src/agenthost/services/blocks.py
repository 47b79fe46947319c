"""An agent's core-memory blocks, addressed by label."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.database import Database
from agenthost.db.rows import AgentBlockRow, BlockRow
from agenthost.errors import Conflict, InvalidArgument, NotFound
from agenthost.schemas.blocks import Block, BlockUpdate
from agenthost.services.agents import get_agent_row
from agenthost.services.pagination import Page, paginate
from agenthost.services.views import block_view


class BlockService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_for_agent(self, agent_id: str, page: Page) -> list[Block]:
        async with self._db.read_session() as session:
            await get_agent_row(session, agent_id)
            stmt = (
                select(BlockRow)
                .join(AgentBlockRow, AgentBlockRow.block_id == BlockRow.id)
                .where(AgentBlockRow.agent_id == agent_id)
            )
            return [block_view(b) for b in await paginate(session, BlockRow, stmt, page)]

    async def retrieve(self, agent_id: str, label: str) -> Block:
        async with self._db.read_session() as session:
            return block_view(await self._by_label(agent_id, label, session))

    async def update(self, agent_id: str, label: str, body: BlockUpdate) -> Block:
        fields = body.model_dump(exclude_unset=True)
        async with self._db.session() as session:
            block = await self._by_label(agent_id, label, session, for_update=True)
            new_value = fields.get("value", block.value)
            new_limit = fields.get("limit", block.limit)
            if new_value is None or new_limit is None:
                raise InvalidArgument(
                    "value and limit cannot be null", loc=("body", "value" if new_value is None else "limit")
                )
            if len(new_value) > new_limit:
                raise InvalidArgument(
                    f"block '{label}' value has {len(new_value)} characters, over its limit of {new_limit}",
                    loc=("body", "value" if "value" in fields else "limit"),
                )
            new_label = fields.get("label")
            if new_label is not None and new_label != block.label:
                links = list(
                    (
                        await session.scalars(select(AgentBlockRow).where(AgentBlockRow.block_id == block.id))
                    ).all()
                )
                for link in links:
                    clash = await session.scalar(
                        select(AgentBlockRow).where(
                            AgentBlockRow.agent_id == link.agent_id, AgentBlockRow.label == new_label
                        )
                    )
                    if clash is not None:
                        raise Conflict(f"agent '{link.agent_id}' already has a block labelled '{new_label}'")
                    link.label = new_label
                block.label = new_label
            block.value = new_value
            block.limit = new_limit
            if "description" in fields:
                block.description = fields["description"]
            if fields.get("read_only") is not None:
                block.read_only = fields["read_only"]
            if "metadata" in fields:
                block.metadata_ = fields["metadata"]
            await session.flush()
            return block_view(block)

    @staticmethod
    async def _by_label(
        agent_id: str, label: str, session: AsyncSession, *, for_update: bool = False
    ) -> BlockRow:
        await get_agent_row(session, agent_id)
        stmt = (
            select(BlockRow)
            .join(AgentBlockRow, AgentBlockRow.block_id == BlockRow.id)
            .where(AgentBlockRow.agent_id == agent_id, AgentBlockRow.label == label)
        )
        if for_update:
            stmt = stmt.with_for_update()
        row = await session.scalar(stmt)
        if row is None:
            raise NotFound(f"agent '{agent_id}' has no block labelled '{label}'")
        return row
