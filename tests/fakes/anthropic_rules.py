"""The request rules of Anthropic's Messages API that the fake enforces, with the API's kind of messages.

Only rules a client can break by converting a conversation wrongly are checked: message roles and
order, block shapes, tool call/result pairing, extended thinking's constraints, image sources.
Stricter than the real API in one place: consecutive same-role turns are refused, where the API
now merges them (a client that relies on that merging has lost track of its turns).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

__all__ = ["Invalid", "check_request"]

_TOP_LEVEL = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_k",
    "top_p",
    "service_tier",
}
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
_THINKING = ("thinking", "redacted_thinking")
# Magic numbers of the image types the API takes: it checks the bytes against the declared type.
_MAGIC: dict[str, Callable[[bytes], bool]] = {
    "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda b: b.startswith((b"GIF87a", b"GIF89a")),
    "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
}


class Invalid(Exception):
    """A request the real API answers with 400 invalid_request_error; the message says why."""


def check_request(
    body: Any,
    *,
    counting: bool,
    signature_ok: Callable[[str, str], bool],
    redacted_ok: Callable[[str], bool],
) -> None:
    """Raise ``Invalid`` for a body the API refuses. ``counting``: the count_tokens route (no max_tokens)."""
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    allowed = _TOP_LEVEL - {"max_tokens", "stream"} if counting else _TOP_LEVEL
    for key in body:
        if key not in allowed:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not counting and (type(max_tokens) is not int or max_tokens < 1):
        raise Invalid("max_tokens: Field required (an integer >= 1)")
    _check_system(body.get("system"))
    tool_names = _check_tools(body.get("tools"))
    choice = _check_tool_choice(body.get("tool_choice"), tool_names)
    thinking = _check_thinking(body.get("thinking"), max_tokens if not counting else None, choice)
    _check_messages(body.get("messages"), tool_names, thinking, signature_ok, redacted_ok)


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise Invalid("system: Input should be a valid string or list of text blocks")
    for i, block in enumerate(system):
        if (
            not isinstance(block, dict)
            or block.get("type") != "text"
            or not isinstance(block.get("text"), str)
        ):
            raise Invalid(f"system.{i}: Input should be a text block")
        if not block["text"].strip():
            raise Invalid(f"system.{i}.text: text content blocks must contain non-whitespace text")


def _check_tools(tools: Any) -> set[str] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise Invalid(f"tools.{i}: Input should be an object")
        extra = set(tool) - {"name", "description", "input_schema", "cache_control", "type"}
        if extra:
            raise Invalid(f"tools.{i}.{sorted(extra)[0]}: Extra inputs are not permitted")
        name = tool.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise Invalid(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if name in names:
            raise Invalid(f"tools: Tool names must be unique ({name})")
        names.add(name)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Invalid(f"tools.{i}.input_schema.type: Input should be 'object'")
        if "description" in tool and not isinstance(tool["description"], str):
            raise Invalid(f"tools.{i}.description: Input should be a valid string")
    return names


def _check_tool_choice(choice: Any, tool_names: set[str] | None) -> str | None:
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    extra = set(choice) - {"type", "name", "disable_parallel_tool_use"}
    if extra:
        raise Invalid(f"tool_choice.{sorted(extra)[0]}: Extra inputs are not permitted")
    if "disable_parallel_tool_use" in choice and not isinstance(choice["disable_parallel_tool_use"], bool):
        raise Invalid("tool_choice.disable_parallel_tool_use: Input should be a valid boolean")
    if choice["type"] in ("any", "tool") and not tool_names:
        raise Invalid("tool_choice: a forced tool choice requires `tools`")
    if choice["type"] == "tool" and choice.get("name") not in (tool_names or ()):
        raise Invalid(f"tool_choice.name: tool {choice.get('name')!r} is not among the tools")
    return str(choice["type"])


def _check_thinking(thinking: Any, max_tokens: int | None, choice: str | None) -> bool:
    if thinking is None:
        return False
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        raise Invalid("thinking.type: Input should be 'enabled' or 'disabled'")
    if thinking["type"] == "disabled":
        return False
    budget = thinking.get("budget_tokens")
    if type(budget) is not int or budget < 1024:
        raise Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if max_tokens is not None and budget >= max_tokens:
        raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
    if choice in ("any", "tool"):
        raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")
    return True


def _check_messages(
    messages: Any,
    tool_names: set[str] | None,
    thinking: bool,
    signature_ok: Callable[[str, str], bool],
    redacted_ok: Callable[[str], bool],
) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    blocks_of: list[list[dict[str, Any]]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        extra = set(message) - {"role", "content"}
        if extra:
            raise Invalid(f"messages.{i}.{sorted(extra)[0]}: Extra inputs are not permitted")
        role = message["role"]
        if i == 0 and role != "user":
            raise Invalid('messages: first message must use the "user" role')
        if i > 0 and role == messages[i - 1]["role"]:
            raise Invalid(
                f'messages: roles must alternate between "user" and "assistant", found two "{role}"'
            )
        blocks = _blocks(message.get("content"), f"messages.{i}")
        for j, block in enumerate(blocks):
            _check_block(block, role, f"messages.{i}.content.{j}", signature_ok, redacted_ok)
        blocks_of.append(blocks)
    uses_tools = any(b["type"] in ("tool_use", "tool_result") for blocks in blocks_of for b in blocks)
    if uses_tools and not tool_names:
        raise Invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.")
    for i, blocks in enumerate(blocks_of):
        if messages[i]["role"] == "assistant":
            _check_assistant_turn(i, blocks, blocks_of[i + 1] if i + 1 < len(blocks_of) else None)
        else:
            _check_user_turn(i, blocks, blocks_of[i - 1] if i > 0 else [])
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return
    final = blocks_of[last]
    if thinking and any(b["type"] == "tool_use" for b in final) and final[0]["type"] not in _THINKING:
        raise Invalid(
            f"messages.{last}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{final[0]['type']}`. When `thinking` is enabled, a final `assistant` message must start "
            "with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks)."
        )
    if not thinking and last == len(messages) - 1 and any(b["type"] in _THINKING for b in final):
        raise Invalid(
            f"messages.{last}.content: When thinking is disabled, an `assistant` message in the final "
            "position cannot contain `thinking`."
        )


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content.strip():
            raise Invalid(f"{where}.content: text content must contain non-whitespace text")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise Invalid(f"{where}: all messages must have non-empty content")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise Invalid(f"{where}.content.{j}: Input should be a content block with a `type`")
    return content


def _check_block(
    block: dict[str, Any],
    role: str,
    where: str,
    signature_ok: Callable[[str, str], bool],
    redacted_ok: Callable[[str], bool],
) -> None:
    kind = block["type"]
    only = {"image": "user", "tool_result": "user", "tool_use": "assistant"}
    only |= dict.fromkeys(_THINKING, "assistant")
    if kind in only and only[kind] != role:
        raise Invalid(f"{where}: `{kind}` blocks are not allowed in `{role}` messages")
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"].strip():
            raise Invalid(f"{where}.text: text content blocks must contain non-whitespace text")
    elif kind == "image":
        _check_image(block.get("source"), f"{where}.source")
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not _TOOL_ID.fullmatch(block["id"]):
            raise Invalid(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not isinstance(block.get("input"), dict):
            raise Invalid(f"{where}: a `tool_use` block needs a string `name` and an object `input`")
    elif kind == "tool_result":
        _check_tool_result(block, where, signature_ok, redacted_ok)
    elif kind == "thinking":
        thought, signature = block.get("thinking"), block.get("signature")
        if not isinstance(thought, str) or not isinstance(signature, str):
            raise Invalid(f"{where}: a `thinking` block needs `thinking` and `signature` strings")
        if not signature_ok(thought, signature):
            raise Invalid(f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "redacted_thinking":
        if not isinstance(block.get("data"), str) or not redacted_ok(block["data"]):
            raise Invalid(f"{where}: Invalid `data` in `redacted_thinking` block")
    else:
        raise Invalid(f"{where}.type: unknown content block type {kind!r}")


def _check_tool_result(
    block: dict[str, Any],
    where: str,
    signature_ok: Callable[[str, str], bool],
    redacted_ok: Callable[[str], bool],
) -> None:
    if not isinstance(block.get("tool_use_id"), str) or not _TOOL_ID.fullmatch(block["tool_use_id"]):
        raise Invalid(f"{where}.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'")
    if "is_error" in block and not isinstance(block["is_error"], bool):
        raise Invalid(f"{where}.is_error: Input should be a valid boolean")
    content = block.get("content")
    if content is None or isinstance(content, str):
        if isinstance(content, str) and not content:
            raise Invalid(f"{where}.content: text content must be non-empty")
        return
    if not isinstance(content, list):
        raise Invalid(f"{where}.content: Input should be a string or a list of blocks")
    for k, inner in enumerate(content):
        if not isinstance(inner, dict) or inner.get("type") not in ("text", "image"):
            raise Invalid(f"{where}.content.{k}: only text and image blocks may be tool results")
        _check_block(inner, "user", f"{where}.content.{k}", signature_ok, redacted_ok)


def _check_image(source: Any, where: str) -> None:
    if not isinstance(source, dict):
        raise Invalid(f"{where}: Field required")
    if source.get("type") == "url":
        if not isinstance(source.get("url"), str) or not source["url"].startswith(("http://", "https://")):
            raise Invalid(f"{where}.url: Input should be an http(s) URL")
        return
    if source.get("type") != "base64":
        raise Invalid(f"{where}.type: Input should be 'base64' or 'url'")
    media_type = source.get("media_type")
    if media_type not in _MAGIC:
        raise Invalid(
            f"{where}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
        )
    try:
        data = base64.b64decode(str(source.get("data") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{where}.data: The image data is not valid base64") from None
    if not data:
        raise Invalid(f"{where}.data: The image data is empty")
    if not _MAGIC[media_type](data):
        raise Invalid(f"{where}.base64.media_type: Image does not match the provided media type {media_type}")


def _check_assistant_turn(
    i: int, blocks: list[dict[str, Any]], following: list[dict[str, Any]] | None
) -> None:
    if any(b["type"] in _THINKING for b in blocks):
        if blocks[0]["type"] not in _THINKING:
            raise Invalid(
                f"messages.{i}.content.0: If an assistant message contains any thinking blocks, the first "
                f"block must be `thinking` or `redacted_thinking`. Found `{blocks[0]['type']}`."
            )
        if blocks[-1]["type"] in _THINKING:
            raise Invalid(f"messages.{i}: The final block in an assistant message cannot be `thinking`.")
    calls = [b["id"] for b in blocks if b["type"] == "tool_use"]
    answered = {b["tool_use_id"] for b in following or () if b["type"] == "tool_result"}
    missing = [c for c in calls if c not in answered]
    if missing:
        raise Invalid(
            f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
            "in the next message."
        )


def _check_user_turn(i: int, blocks: list[dict[str, Any]], previous: list[dict[str, Any]]) -> None:
    calls = {b["id"] for b in previous if b["type"] == "tool_use"}
    seen_other = False
    for j, block in enumerate(blocks):
        if block["type"] != "tool_result":
            seen_other = True
            continue
        if seen_other:
            raise Invalid(
                f"messages.{i}.content.{j}: `tool_result` blocks must come first in the user message, "
                "before any other content"
            )
        if block["tool_use_id"] not in calls:
            raise Invalid(
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` "
                "block in the previous message."
            )
