"""The built-in tools a ``letta_v1_agent`` gets: memory edits, conversation and archival search."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from agenthost.llm.base import ToolSpec

_NAMESPACE = uuid.UUID("8f1e7a52-3c55-4d7e-9a3e-0e6b9d0c2a11")


@dataclass(frozen=True, slots=True)
class BuiltinTool:
    name: str
    description: str
    parameters: dict[str, Any]
    tool_type: str

    @property
    def id(self) -> str:
        # Stable across restarts and servers, so clients can keep tool ids.
        return f"tool-{uuid.uuid5(_NAMESPACE, self.name)}"

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)

    @property
    def json_schema(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def _schema(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


_LABEL = {"type": "string", "description": "The label of the memory block to edit."}

BUILTIN_TOOLS: dict[str, BuiltinTool] = {
    tool.name: tool
    for tool in (
        BuiltinTool(
            "memory_insert",
            "Insert text into a memory block, after the given line (0 = at the start, -1 = at the end).",
            _schema(
                {
                    "label": _LABEL,
                    "new_str": {"type": "string", "description": "The text to insert."},
                    "insert_line": {"type": "integer", "description": "Line to insert after; -1 = end."},
                },
                ["label", "new_str"],
            ),
            "letta_memory_core",
        ),
        BuiltinTool(
            "memory_replace",
            "Replace text in a memory block. old_str must occur exactly once in the block.",
            _schema(
                {
                    "label": _LABEL,
                    "old_str": {"type": "string", "description": "The exact text to replace."},
                    "new_str": {"type": "string", "description": "The replacement text."},
                },
                ["label", "old_str", "new_str"],
            ),
            "letta_memory_core",
        ),
        BuiltinTool(
            "memory_rethink",
            "Rewrite a whole memory block with new contents.",
            _schema(
                {"label": _LABEL, "new_memory": {"type": "string", "description": "The block's new value."}},
                ["label", "new_memory"],
            ),
            "letta_memory_core",
        ),
        BuiltinTool(
            "conversation_search",
            "Search earlier messages of this conversation by text.",
            _schema(
                {
                    "query": {"type": "string", "description": "Text to look for."},
                    "roles": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["user", "assistant", "tool"]},
                        "description": "Only messages from these roles.",
                    },
                    "limit": {"type": "integer", "description": "Maximum number of results (default 10)."},
                },
                ["query"],
            ),
            "letta_core",
        ),
        BuiltinTool(
            "archival_memory_insert",
            "Store a passage in archival memory (long-term memory outside the context window), to be "
            "found later with archival_memory_search.",
            _schema(
                {
                    "content": {"type": "string", "description": "The text to remember."},
                    "tags": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Tags to find the passage by later.",
                    },
                },
                ["content"],
            ),
            "letta_core",
        ),
        BuiltinTool(
            "archival_memory_search",
            "Search archival memory by meaning (semantic search); returns the closest passages first.",
            _schema(
                {
                    "query": {"type": "string", "description": "What to look for."},
                    "tags": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Only passages with these tags.",
                    },
                    "tag_match_mode": {
                        "type": "string",
                        "enum": ["any", "all"],
                        "description": "Whether a passage needs any or all of the tags (default any).",
                    },
                    "top_k": {"type": "integer", "description": "Maximum number of results (default 10)."},
                    "start_datetime": {
                        "type": "string",
                        "description": "Only passages stored at or after this ISO 8601 time.",
                    },
                    "end_datetime": {
                        "type": "string",
                        "description": "Only passages stored at or before this ISO 8601 time.",
                    },
                },
                ["query"],
            ),
            "letta_core",
        ),
    )
}

BASE_TOOL_NAMES: tuple[str, ...] = tuple(BUILTIN_TOOLS)
