"""Memory edits applied again at commit to a block another run changed meanwhile (``merge_edits``)."""

from __future__ import annotations

from agenthost.tools.memory import BlockState, merge_edits, run_builtin


async def _no_search(query: str, roles: list[str] | None, limit: int) -> list[dict[str, str]]:
    return []


async def _edited(value: str, *edits: tuple[str, dict[str, object]]) -> BlockState:
    block = BlockState("block-1", "notes", value, 1000, None, False, base=value)
    for name, args in edits:
        await run_builtin(name, {"label": "notes", **args}, [block], _no_search)
    return block


async def test_an_unchanged_block_takes_the_runs_value() -> None:
    block = await _edited("a", ("memory_insert", {"new_str": "b"}))
    assert merge_edits(block, "a") == "a\nb"


async def test_inserts_and_replaces_apply_again_to_the_concurrent_value() -> None:
    block = await _edited(
        "a\nb", ("memory_insert", {"new_str": "mine"}), ("memory_replace", {"old_str": "b", "new_str": "B"})
    )
    # Another run appended "theirs" meanwhile: both runs' edits are kept.
    assert merge_edits(block, "a\nb\ntheirs") == "a\nB\ntheirs\nmine"


async def test_an_edit_whose_text_was_changed_meanwhile_is_dropped_and_the_other_write_kept() -> None:
    block = await _edited("a\nb", ("memory_replace", {"old_str": "b", "new_str": "mine"}))
    assert merge_edits(block, "a\nchanged") == "a\nchanged"


async def test_a_rethink_rewrites_whatever_is_there() -> None:
    block = await _edited("old", ("memory_rethink", {"new_memory": "new"}))
    assert merge_edits(block, "old and more") == "new"
