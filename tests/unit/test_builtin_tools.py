"""The built-in memory tools, against in-memory blocks."""

from __future__ import annotations

from typing import Any

import pytest

from agenthost.agent.prompt import compile_system
from agenthost.schemas.messages import ClientSkill
from agenthost.tools.memory import BlockState, ToolFailed, run_builtin


async def _no_search(query: str, roles: list[str] | None, limit: int) -> list[dict[str, Any]]:
    return []


def _blocks() -> list[BlockState]:
    return [
        BlockState("block-1", "human", "Name: Bob\nLikes: tea", 40, "about the user", False),
        BlockState("block-2", "persona", "I am helpful", 100, None, True),
    ]


async def test_replace_insert_rethink() -> None:
    blocks = _blocks()
    await run_builtin(
        "memory_replace", {"label": "human", "old_str": "Bob", "new_str": "Ada"}, blocks, _no_search
    )
    assert blocks[0].value == "Name: Ada\nLikes: tea"
    assert blocks[0].changed
    await run_builtin(
        "memory_insert", {"label": "human", "new_str": "Age: 36", "insert_line": 1}, blocks, _no_search
    )
    assert blocks[0].value == "Name: Ada\nAge: 36\nLikes: tea"
    await run_builtin("memory_insert", {"label": "human", "new_str": "End"}, blocks, _no_search)
    assert blocks[0].value.endswith("\nEnd")
    await run_builtin("memory_rethink", {"label": "human", "new_memory": "fresh"}, blocks, _no_search)
    assert blocks[0].value == "fresh"


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("memory_replace", {"label": "human", "old_str": "nope", "new_str": "x"}, "found 0"),
        ("memory_replace", {"label": "missing", "old_str": "a", "new_str": "b"}, "no memory block"),
        ("memory_rethink", {"label": "persona", "new_memory": "evil"}, "read-only"),
        ("memory_rethink", {"label": "human", "new_memory": "x" * 41}, "over its limit of 40"),
        ("memory_insert", {"label": "human"}, "new_str"),
    ],
)
async def test_bad_edits_fail_with_a_message_for_the_llm(
    name: str, args: dict[str, Any], message: str
) -> None:
    blocks = _blocks()
    with pytest.raises(ToolFailed, match=message):
        await run_builtin(name, args, blocks, _no_search)
    assert not blocks[0].changed


def test_system_prompt_carries_blocks_and_skills() -> None:
    text = compile_system(
        "Be kind.", _blocks(), [ClientSkill(name="pdf", description="read PDFs", location="s/pdf")]
    )
    assert text.startswith("Be kind.")
    assert "<human>" in text and "Name: Bob" in text and "chars_limit=40" in text
    assert "read_only=true" in text
    assert "- pdf: read PDFs (location: s/pdf)" in text
