"""The core-memory tools: a run's memory blocks, and the built-in tools executed against them (their
edits are committed with the step).

Runs of several threads of one agent (conversations), or of several agents sharing a block, may edit
a block at the same time. Each memory edit is recorded with the block; the commit applies the run's
edits again to the block's current value under a row lock (``merge_edits``), so no edit is lost to a
concurrent one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SearchFn = Callable[[str, list[str] | None, int], Awaitable[list[dict[str, Any]]]]


@dataclass(slots=True)
class BlockState:
    """A memory block as the loop holds it while a run executes."""

    id: str
    label: str
    value: str
    limit: int
    description: str | None
    read_only: bool
    changed: bool = False
    # The value as last read from or written to the database, and the edits made since (tool name,
    # arguments): a commit applies them again to the block's current value (``merge_edits``).
    base: str | None = None
    edits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class ToolFailed(Exception):
    """A tool call that the LLM should see as an error (not a server bug)."""


async def run_builtin(name: str, args: dict[str, Any], blocks: list[BlockState], search: SearchFn) -> str:
    if name == "conversation_search":
        query = _str(args, "query")
        limit = args.get("limit") or 10
        if not isinstance(limit, int) or limit < 1:
            raise ToolFailed("limit must be a positive integer")
        roles = args.get("roles")
        results = await search(query, roles if isinstance(roles, list) else None, min(limit, 100))
        if not results:
            return f"No messages found matching '{query}'."
        return "\n".join(f"[{r['date']}] {r['role']}: {r['text']}" for r in results)
    block = _block(blocks, _str(args, "label"))
    if name not in _EDITS:
        raise ToolFailed(f"tool '{name}' has no implementation")
    value = apply_edit(block.value, name, args, block.limit, block.label)
    if block.base is None:
        block.base = block.value
    block.value = value
    block.changed = True
    block.edits.append((name, args))
    return _EDITS[name].format(label=block.label)


_EDITS = {
    "memory_replace": "Block '{label}' edited.",
    "memory_insert": "Inserted into block '{label}'.",
    "memory_rethink": "Block '{label}' rewritten.",
}


def apply_edit(value: str, name: str, args: dict[str, Any], limit: int, label: str) -> str:
    """The block's value after one memory edit (``ToolFailed`` if the edit does not apply to it)."""
    if name == "memory_replace":
        old, new = _str(args, "old_str"), _str(args, "new_str")
        count = value.count(old) if old else 0
        if count != 1:
            raise ToolFailed(f"old_str must occur exactly once in block '{label}', found {count} occurrences")
        result = value.replace(old, new, 1)
    elif name == "memory_insert":
        new = _str(args, "new_str")
        line = args.get("insert_line", -1)
        if not isinstance(line, int):
            raise ToolFailed("insert_line must be an integer")
        lines = value.split("\n") if value else []
        if line == -1 or line >= len(lines):
            lines.append(new)
        elif line < -1:
            raise ToolFailed("insert_line must be -1 (end) or a line number >= 0")
        else:
            lines.insert(line, new)
        result = "\n".join(lines)
    else:
        result = _str(args, "new_memory")
    if len(result) > limit:
        raise ToolFailed(
            f"edit rejected: block '{label}' would have {len(result)} characters, over its limit of "
            f"{limit}. Shorten the text and try again."
        )
    return result


def merge_edits(block: BlockState, current: str) -> str:
    """The value to store for ``block`` given its ``current`` stored value: the run's value when nobody
    else wrote the block since the run read it, else the run's edits applied again, in order, to what
    the other writer left. An edit that no longer applies (its text was changed meanwhile) is dropped,
    and logged: the other write is kept whole rather than overwritten."""
    if current == block.base:
        return block.value
    value = current
    for name, args in block.edits:
        try:
            value = apply_edit(value, name, args, block.limit, block.label)
        except ToolFailed as exc:
            log.warning(
                "block %s: an edit (%s) no longer applies after a concurrent write: %s", block.id, name, exc
            )
    return value


def _str(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise ToolFailed(f"argument '{key}' (a string) is required")
    return value


def _block(blocks: list[BlockState], label: str) -> BlockState:
    for block in blocks:
        if block.label == label:
            if block.read_only:
                raise ToolFailed(f"block '{label}' is read-only")
            return block
    raise ToolFailed(f"no memory block labelled '{label}'; blocks: {[b.label for b in blocks]}")
