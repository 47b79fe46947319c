"""Memory blocks: the server's blocks on their own (``/v1/blocks``) and as agents' core memory.

A block attached to several agents is one row: an edit made through any of them (memory tool or API)
is what all of them read at their next run's start. ``agent_blocks.label`` mirrors the block's label
so that the database itself keeps labels unique per agent; every label change here updates both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from agenthost.db import agents as agents_db
from agenthost.db import blocks as blocks_db
from agenthost.db.database import ConstraintViolation, Database, Session
from agenthost.errors import Conflict, InvalidArgument, NotFound
from agenthost.ids import check_id, new_id
from agenthost.pages import Page
from agenthost.schemas.blocks import Block, BlockCreate, BlockUpdate


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


T = TypeVar("T")


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
            return await blocks_db.insert_block(session, new_id("block"), body)

    async def retrieve(self, block_id: str) -> Block:
        async with self._db.read_session() as session:
            return await blocks_db.get_block(session, block_id)

    async def list_blocks(self, page: Page, filters: BlockFilters) -> list[Block]:
        if filters.match_nothing():
            return []
        async with self._db.read_session() as session:
            return await blocks_db.list_blocks(
                session,
                page,
                label=filters.label,
                label_search=filters.label_search,
                value_search=filters.value_search,
                description_search=filters.description_search,
                agents_count_gt=filters.agents_count_gt,
                agents_count_lt=filters.agents_count_lt,
                agents_count_eq=filters.agents_count_eq,
            )

    async def update(self, block_id: str, body: BlockUpdate) -> Block:
        async with self._db.session() as session:
            block = await blocks_db.get_block(session, block_id, for_update=True)
            return await _apply_update(session, block, body)

    async def delete(self, block_id: str) -> None:
        """Delete a block, detaching it from every agent that has it."""
        async with self._db.session() as session:
            await blocks_db.delete_block(session, block_id)

    async def agent_ids(self, block_id: str, page: Page) -> list[str]:
        """One page of the ids of the agents the block is attached to (rendered by the agent service)."""
        async with self._db.read_session() as session:
            await blocks_db.get_block(session, block_id)
            return await blocks_db.block_agent_ids(session, block_id, page)

    # -- /v1/agents/{agent_id}/core-memory/blocks -------------------------------------------------

    async def list_for_agent(self, agent_id: str, page: Page) -> list[Block]:
        async with self._db.read_session() as session:
            await agents_db.require_agent(session, agent_id)
            return await blocks_db.agent_blocks_page(session, agent_id, page)

    async def retrieve_for_agent(self, agent_id: str, label: str) -> Block:
        async with self._db.read_session() as session:
            await agents_db.require_agent(session, agent_id)
            return await blocks_db.agent_block(session, agent_id, label)

    async def update_for_agent(self, agent_id: str, label: str, body: BlockUpdate) -> Block:
        async with self._db.session() as session:
            await agents_db.require_agent(session, agent_id)
            block = await blocks_db.agent_block(session, agent_id, label, for_update=True)
            return await _apply_update(session, block, body)

    async def attach(self, agent_id: str, block_id: str) -> None:
        """Attach a block to an agent (after its other blocks); 409 if the agent has one with its label."""
        async with self._db.session() as session:
            await agents_db.require_agent(session, agent_id, for_update=True)
            # Locked so that a concurrent relabel cannot leave this link with the old label.
            block = await blocks_db.get_block(session, block_id, for_update=True)
            clash = await blocks_db.label_holder(session, agent_id, block.label)
            taken = f"agent '{agent_id}' already has a block labelled '{block.label}'"
            if clash is not None:
                raise Conflict(taken + (" (this block)" if clash == block_id else f" ('{clash}')"))
            await agents_db.touch_agent(session, agent_id)
            await _unique_labels(blocks_db.link_block(session, agent_id, block_id, block.label), taken)

    async def detach(self, agent_id: str, block_id: str) -> None:
        """Detach a block from an agent; the block itself stays (it may be shared or reattached)."""
        async with self._db.session() as session:
            await agents_db.require_agent(session, agent_id, for_update=True)
            check_id(block_id, "block")
            if not await blocks_db.unlink_block(session, agent_id, block_id):
                await blocks_db.get_block(session, block_id)  # 404 naming the block when it does not exist
                raise NotFound(f"block '{block_id}' is not attached to agent '{agent_id}'")
            await agents_db.touch_agent(session, agent_id)


async def _apply_update(session: Session, block: Block, body: BlockUpdate) -> Block:
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
    changes: dict[str, Any] = {"value": new_value, "limit": new_limit}
    new_label = fields.get("label")
    if new_label is not None and new_label != block.label:
        for agent_id in await blocks_db.block_agents(session, block.id):
            if await blocks_db.label_holder(session, agent_id, new_label) is not None:
                raise Conflict(f"agent '{agent_id}' already has a block labelled '{new_label}'")
        changes["label"] = new_label
    if "description" in fields:
        changes["description"] = fields["description"]
    if fields.get("read_only") is not None:
        changes["read_only"] = fields["read_only"]
    if "metadata" in fields:
        changes["metadata"] = fields["metadata"]
    label = changes.get("label", block.label)
    return await _unique_labels(
        blocks_db.update_block(session, block.id, changes),
        f"an agent of this block already has a block labelled '{label}'",
    )


async def _unique_labels(saving: Awaitable[T], clash: str) -> T:
    # The checks before read committed state; a concurrent attach or relabel of another block can still
    # take the label first, and then the database's unique (agent_id, label) says so here.
    try:
        return await saving
    except ConstraintViolation as exc:
        raise Conflict(clash) from exc


def _refuse_tags(tags: Sequence[str] | None) -> None:
    if tags:
        raise InvalidArgument(
            "block tags are not supported by this server (use metadata instead)", loc=("body", "tags")
        )
