"""Executing the built-in tools against the run's in-memory blocks (committed with the step)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agenthost.agent.prompt import BlockState

SearchFn = Callable[[str, list[str] | None, int], Awaitable[list[dict[str, Any]]]]


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
    if name == "memory_replace":
        old, new = _str(args, "old_str"), _str(args, "new_str")
        count = block.value.count(old) if old else 0
        if count != 1:
            raise ToolFailed(
                f"old_str must occur exactly once in block '{block.label}', found {count} occurrences"
            )
        _set(block, block.value.replace(old, new, 1))
        return f"Block '{block.label}' edited."
    if name == "memory_insert":
        new = _str(args, "new_str")
        line = args.get("insert_line", -1)
        if not isinstance(line, int):
            raise ToolFailed("insert_line must be an integer")
        lines = block.value.split("\n") if block.value else []
        if line == -1 or line >= len(lines):
            lines.append(new)
        elif line < -1:
            raise ToolFailed("insert_line must be -1 (end) or a line number >= 0")
        else:
            lines.insert(line, new)
        _set(block, "\n".join(lines))
        return f"Inserted into block '{block.label}'."
    if name == "memory_rethink":
        _set(block, _str(args, "new_memory"))
        return f"Block '{block.label}' rewritten."
    raise ToolFailed(f"tool '{name}' has no implementation")


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


def _set(block: BlockState, value: str) -> None:
    if len(value) > block.limit:
        raise ToolFailed(
            f"edit rejected: block '{block.label}' would have {len(value)} characters, over its limit of "
            f"{block.limit}. Shorten the text and try again."
        )
    block.value = value
    block.changed = True
