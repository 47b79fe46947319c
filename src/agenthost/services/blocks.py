"""Memory blocks: the server's blocks on their own (``/v1/blocks``) and as agents' core memory.

A block attached to several agents is one row: an edit made through any of them (memory tool or API)
is what all of them read at their next run's start. ``agent_blocks.label`` mirrors the block's label
so that the database itself keeps labels unique per agent; every label change here updates both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.database import Database
from agenthost.db.rows import AgentBlockRow, AgentRow, BlockRow
from agenthost.db.types import utcnow
from agenthost.errors import Conflict, InvalidArgument, NotFound
from agenthost.ids import check_id, new_id
from agenthost.schemas.blocks import Block, BlockCreate, BlockUpdate
from agenthost.services.agents import get_agent_row
from agenthost.services.pagination import Page, paginate
from agenthost.services.views import block_view


@dataclass(frozen=True, slots=True)
class BlockFilters:
    """``GET /v1/blocks/`` filters. Searches are case-insensitive substring matches."""

    label: str | None = None
    label_search: str | None = None
    value_search: str | None = None
    description_search: str | None = None
    agents_count_gt: int | None = None
    agents_count_lt: int | None = None
    agents_count_eq: Sequence[int] | None = None
    # Letta filters on things no block has here (templates, tags, identities): any of them set
    # matches no block, which is the true answer, rather than being ignored and matching all.
    templates_only: bool = False
    template_name: str | None = None
    tags: Sequence[str] | None = None
    identity_id: str | None = None
    identifier_keys: Sequence[str] | None = None

    def match_nothing(self) -> bool:
        return bool(
            self.templates_only
            or self.template_name is not None
            or self.tags
            or self.identity_id is not None
            or self.identifier_keys
        )

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.label is not None:
            clauses.append(BlockRow.label == self.label)
        for column, text in (
            (BlockRow.label, self.label_search),
            (BlockRow.value, self.value_search),
            (BlockRow.description, self.description_search),
        ):
            if text:
                clauses.append(func.lower(column).contains(text.lower(), autoescape=True))
        if self.agents_count_gt is not None or self.agents_count_lt is not None or self.agents_count_eq:
            count = (
                select(func.count())
                .select_from(AgentBlockRow)
                .where(AgentBlockRow.block_id == BlockRow.id)
                .scalar_subquery()
            )
            if self.agents_count_gt is not None:
                clauses.append(count > self.agents_count_gt)
            if self.agents_count_lt is not None:
                clauses.append(count < self.agents_count_lt)
            if self.agents_count_eq:
                clauses.append(count.in_(list(self.agents_count_eq)))
        return clauses


async def get_block_row(session: AsyncSession, block_id: str, *, for_update: bool = False) -> BlockRow:
    check_id(block_id, "block")
    stmt = select(BlockRow).where(BlockRow.id == block_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"block '{block_id}' not found")
    return row


class BlockService:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- /v1/blocks -------------------------------------------------------------------------------

    async def create(self, body: BlockCreate) -> Block:
        _refuse_tags(body.tags)
        if len(body.value) > body.limit:
            raise InvalidArgument(
                f"block '{body.label}' value has {len(body.value)} characters, "
                f"over its limit of {body.limit}",
                loc=("body", "value"),
            )
        async with self._db.session() as session:
            row = BlockRow(
                id=new_id("block"),
                label=body.label,
                value=body.value,
                limit=body.limit,
                description=body.description,
                read_only=body.read_only,
                metadata_=body.metadata,
            )
            session.add(row)
            await session.flush()
            return block_view(row)

    async def retrieve(self, block_id: str) -> Block:
        async with self._db.read_session() as session:
            return block_view(await get_block_row(session, block_id))

    async def list_blocks(self, page: Page, filters: BlockFilters) -> list[Block]:
        if filters.match_nothing():
            return []
        stmt = select(BlockRow).where(*filters.where())
        async with self._db.read_session() as session:
            return [block_view(b) for b in await paginate(session, BlockRow, stmt, page)]

    async def update(self, block_id: str, body: BlockUpdate) -> Block:
        async with self._db.session() as session:
            row = await get_block_row(session, block_id, for_update=True)
            await _apply_update(session, row, body)
            return block_view(row)

    async def delete(self, block_id: str) -> None:
        """Delete a block, detaching it from every agent that has it."""
        async with self._db.session() as session:
            row = await get_block_row(session, block_id, for_update=True)
            await session.execute(delete(AgentBlockRow).where(AgentBlockRow.block_id == block_id))
            await session.delete(row)

    async def agent_ids(self, block_id: str, page: Page) -> list[str]:
        """One page of the ids of the agents the block is attached to (rendered by the agent service)."""
        async with self._db.read_session() as session:
            await get_block_row(session, block_id)
            stmt = (
                select(AgentRow)
                .join(AgentBlockRow, AgentBlockRow.agent_id == AgentRow.id)
                .where(AgentBlockRow.block_id == block_id)
            )
            return [a.id for a in await paginate(session, AgentRow, stmt, page)]

    # -- /v1/agents/{agent_id}/core-memory/blocks -------------------------------------------------

    async def list_for_agent(self, agent_id: str, page: Page) -> list[Block]:
        async with self._db.read_session() as session:
            await get_agent_row(session, agent_id)
            stmt = (
                select(BlockRow)
                .join(AgentBlockRow, AgentBlockRow.block_id == BlockRow.id)
                .where(AgentBlockRow.agent_id == agent_id)
            )
            return [block_view(b) for b in await paginate(session, BlockRow, stmt, page)]

    async def retrieve_for_agent(self, agent_id: str, label: str) -> Block:
        async with self._db.read_session() as session:
            return block_view(await _by_label(session, agent_id, label))

    async def update_for_agent(self, agent_id: str, label: str, body: BlockUpdate) -> Block:
        async with self._db.session() as session:
            row = await _by_label(session, agent_id, label, for_update=True)
            await _apply_update(session, row, body)
            return block_view(row)

    async def attach(self, agent_id: str, block_id: str) -> None:
        """Attach a block to an agent (after its other blocks); 409 if the agent has one with its label."""
        async with self._db.session() as session:
            agent = await get_agent_row(session, agent_id, for_update=True)
            # Locked so that a concurrent relabel cannot leave this link with the old label.
            block = await get_block_row(session, block_id, for_update=True)
            clash = await session.scalar(
                select(AgentBlockRow.block_id).where(
                    AgentBlockRow.agent_id == agent_id, AgentBlockRow.label == block.label
                )
            )
            if clash is not None:
                same = " (this block)" if clash == block_id else f" ('{clash}')"
                raise Conflict(f"agent '{agent_id}' already has a block labelled '{block.label}'{same}")
            last = await session.scalar(
                select(func.max(AgentBlockRow.position)).where(AgentBlockRow.agent_id == agent_id)
            )
            session.add(
                AgentBlockRow(
                    agent_id=agent_id,
                    block_id=block_id,
                    label=block.label,
                    position=0 if last is None else last + 1,
                )
            )
            agent.updated_at = utcnow()
            await _flush_labels(session, f"agent '{agent_id}' already has a block labelled '{block.label}'")

    async def detach(self, agent_id: str, block_id: str) -> None:
        """Detach a block from an agent; the block itself stays (it may be shared or reattached)."""
        async with self._db.session() as session:
            agent = await get_agent_row(session, agent_id, for_update=True)
            check_id(block_id, "block")
            deleted = await session.execute(
                delete(AgentBlockRow).where(
                    AgentBlockRow.agent_id == agent_id, AgentBlockRow.block_id == block_id
                )
            )
            if getattr(deleted, "rowcount", 0) == 0:
                await get_block_row(session, block_id)  # 404 naming the block when it does not exist
                raise NotFound(f"block '{block_id}' is not attached to agent '{agent_id}'")
            agent.updated_at = utcnow()


async def _by_label(
    session: AsyncSession, agent_id: str, label: str, *, for_update: bool = False
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


async def _apply_update(session: AsyncSession, block: BlockRow, body: BlockUpdate) -> None:
    """The update rules, wherever the block was addressed from: limit enforced, labels unique per agent."""
    fields = body.model_dump(exclude_unset=True)
    _refuse_tags(fields.get("tags"))
    new_value = fields.get("value", block.value)
    new_limit = fields.get("limit", block.limit)
    if new_value is None or new_limit is None:
        raise InvalidArgument(
            "value and limit cannot be null", loc=("body", "value" if new_value is None else "limit")
        )
    if len(new_value) > new_limit:
        raise InvalidArgument(
            f"block '{block.label}' value has {len(new_value)} characters, over its limit of {new_limit}",
            loc=("body", "value" if "value" in fields else "limit"),
        )
    new_label = fields.get("label")
    if new_label is not None and new_label != block.label:
        links = (await session.scalars(select(AgentBlockRow).where(AgentBlockRow.block_id == block.id))).all()
        for link in links:
            clash = await session.scalar(
                select(AgentBlockRow.block_id).where(
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
    await _flush_labels(session, f"an agent of this block already has a block labelled '{block.label}'")


async def _flush_labels(session: AsyncSession, clash: str) -> None:
    # The checks before read committed state; a concurrent attach or relabel of another block can still
    # take the label first, and then the database's unique (agent_id, label) says so here.
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(clash) from exc


def _refuse_tags(tags: Sequence[str] | None) -> None:
    if tags:
        raise InvalidArgument(
            "block tags are not supported by this server (use metadata instead)", loc=("body", "tags")
        )
