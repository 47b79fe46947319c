"""Queries on memory blocks and their links to agents (``agent_blocks``).

``agent_blocks.label`` mirrors the block's label so that the database itself keeps labels unique per
agent: every label change here updates both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.pagination import paginate
from agenthost.db.rows import AgentBlockRow, AgentRow, BlockRow
from agenthost.errors import NotFound
from agenthost.ids import check_id
from agenthost.pages import Page
from agenthost.schemas.blocks import Block, BlockCreate


def block_view(row: BlockRow) -> Block:
    return Block(
        id=row.id,
        label=row.label,
        value=row.value,
        limit=row.limit,
        description=row.description,
        read_only=row.read_only,
        metadata=row.metadata_,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def get_block(session: AsyncSession, block_id: str, *, for_update: bool = False) -> Block:
    """The block (404 if there is none); ``for_update`` locks it until the transaction ends."""
    return block_view(await _block_row(session, block_id, for_update=for_update))


async def insert_block(session: AsyncSession, block_id: str, body: BlockCreate) -> Block:
    row = BlockRow(
        id=block_id,
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


async def update_block(session: AsyncSession, block_id: str, changes: dict[str, Any]) -> Block:
    """Set the block's fields (wire names) and flush; a new ``label`` is mirrored on its links.

    Raises ``ConstraintViolation`` if an agent of the block already has a block with the new label.
    """
    row = await _block_row(session, block_id)
    if "label" in changes and changes["label"] != row.label:
        links = (await session.scalars(select(AgentBlockRow).where(AgentBlockRow.block_id == block_id))).all()
        for link in links:
            link.label = changes["label"]
    for key, value in changes.items():
        setattr(row, "metadata_" if key == "metadata" else key, value)
    await session.flush()
    return block_view(row)


async def delete_block(session: AsyncSession, block_id: str) -> None:
    """Delete a block, detaching it from every agent that has it."""
    row = await _block_row(session, block_id, for_update=True)
    await session.execute(delete(AgentBlockRow).where(AgentBlockRow.block_id == block_id))
    await session.delete(row)


async def list_blocks(
    session: AsyncSession,
    page: Page,
    *,
    label: str | None = None,
    label_search: str | None = None,
    value_search: str | None = None,
    description_search: str | None = None,
    agents_count_gt: int | None = None,
    agents_count_lt: int | None = None,
    agents_count_eq: Sequence[int] | None = None,
) -> list[Block]:
    """One page of blocks; searches are case-insensitive substring matches."""
    clauses: list[ColumnElement[bool]] = []
    if label is not None:
        clauses.append(BlockRow.label == label)
    for column, text in (
        (BlockRow.label, label_search),
        (BlockRow.value, value_search),
        (BlockRow.description, description_search),
    ):
        if text:
            clauses.append(func.lower(column).contains(text.lower(), autoescape=True))
    if agents_count_gt is not None or agents_count_lt is not None or agents_count_eq:
        count = (
            select(func.count())
            .select_from(AgentBlockRow)
            .where(AgentBlockRow.block_id == BlockRow.id)
            .scalar_subquery()
        )
        if agents_count_gt is not None:
            clauses.append(count > agents_count_gt)
        if agents_count_lt is not None:
            clauses.append(count < agents_count_lt)
        if agents_count_eq:
            clauses.append(count.in_(list(agents_count_eq)))
    stmt = select(BlockRow).where(*clauses)
    return [block_view(b) for b in await paginate(session, BlockRow, stmt, page)]


async def block_agent_ids(session: AsyncSession, block_id: str, page: Page) -> list[str]:
    """One page of the ids of the agents the block is attached to."""
    stmt = (
        select(AgentRow)
        .join(AgentBlockRow, AgentBlockRow.agent_id == AgentRow.id)
        .where(AgentBlockRow.block_id == block_id)
    )
    return [a.id for a in await paginate(session, AgentRow, stmt, page)]


async def agent_blocks(session: AsyncSession, agent_id: str) -> list[Block]:
    """All the agent's blocks, in their order in its memory."""
    return [block_view(b) for b in await agent_block_rows(session, agent_id)]


async def agent_block_rows(session: AsyncSession, agent_id: str) -> list[BlockRow]:
    stmt = (
        select(BlockRow)
        .join(AgentBlockRow, AgentBlockRow.block_id == BlockRow.id)
        .where(AgentBlockRow.agent_id == agent_id)
        .order_by(AgentBlockRow.position, BlockRow.seq)
    )
    return list((await session.scalars(stmt)).all())


async def agent_blocks_page(session: AsyncSession, agent_id: str, page: Page) -> list[Block]:
    stmt = (
        select(BlockRow)
        .join(AgentBlockRow, AgentBlockRow.block_id == BlockRow.id)
        .where(AgentBlockRow.agent_id == agent_id)
    )
    return [block_view(b) for b in await paginate(session, BlockRow, stmt, page)]


async def agent_block(session: AsyncSession, agent_id: str, label: str, *, for_update: bool = False) -> Block:
    """The agent's block labelled ``label`` (404 if it has none)."""
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
    return block_view(row)


async def block_agents(session: AsyncSession, block_id: str) -> list[str]:
    """The ids of the agents the block is attached to."""
    return list(
        (
            await session.scalars(select(AgentBlockRow.agent_id).where(AgentBlockRow.block_id == block_id))
        ).all()
    )


async def label_holder(session: AsyncSession, agent_id: str, label: str) -> str | None:
    """The id of the agent's block labelled ``label``, if it has one."""
    return await session.scalar(
        select(AgentBlockRow.block_id).where(AgentBlockRow.agent_id == agent_id, AgentBlockRow.label == label)
    )


async def link_block(session: AsyncSession, agent_id: str, block_id: str, label: str) -> None:
    """Attach the block after the agent's other blocks, then flush.

    Raises ``ConstraintViolation`` if the agent already has a block labelled ``label``.
    """
    last = await session.scalar(
        select(func.max(AgentBlockRow.position)).where(AgentBlockRow.agent_id == agent_id)
    )
    session.add(
        AgentBlockRow(
            agent_id=agent_id, block_id=block_id, label=label, position=0 if last is None else last + 1
        )
    )
    await session.flush()


def add_link(session: AsyncSession, agent_id: str, block_id: str, label: str, position: int) -> None:
    """Attach the block at ``position`` (written at the next flush): a new agent's blocks, in order."""
    session.add(AgentBlockRow(agent_id=agent_id, block_id=block_id, label=label, position=position))


async def unlink_block(session: AsyncSession, agent_id: str, block_id: str) -> bool:
    """Detach the block from the agent; False if it was not attached."""
    deleted = await session.execute(
        delete(AgentBlockRow).where(AgentBlockRow.agent_id == agent_id, AgentBlockRow.block_id == block_id)
    )
    return getattr(deleted, "rowcount", 0) != 0


async def _block_row(session: AsyncSession, block_id: str, *, for_update: bool = False) -> BlockRow:
    check_id(block_id, "block")
    stmt = select(BlockRow).where(BlockRow.id == block_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"block '{block_id}' not found")
    return row
