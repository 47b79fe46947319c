"""Our neutral (OpenAI chat) messages as Anthropic's Messages API takes them, and its answers back.

Pure functions, no I/O. The Messages API differs from the chat format in ways that each turn into a
400 when ignored, so the conversion also repairs what the API would refuse:

- system text is a top-level ``system`` parameter, not a message;
- turns alternate, starting with a user turn (consecutive same-role messages are merged, a
  conversation that opens with the assistant gets a short user turn in front);
- tool results are ``tool_result`` blocks of a user turn, which must come first in that turn and
  answer the ``tool_use`` blocks of the assistant turn just before it, all of them;
- no text block may be empty or whitespace;
- ``tool_use``/``tool_result`` blocks are refused when the request defines no tools;
- with extended thinking, forced tool use is refused, and the assistant turn whose tool calls are
  being answered must start with the signed thinking block that came with it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from anthropic.types import Message

from agenthost.llm.base import LLMError, LLMRequest, LLMResponse, LLMToolCall, Reasoning

DEFAULT_MAX_TOKENS = 4096
# The API's floor for ``thinking.budget_tokens``.
MIN_THINKING_BUDGET = 1024
CLAUDE_CONTEXT_WINDOW = 200_000

# Models with extended thinking ("thinking": {"type": "enabled", ...}); dated ids and aliases both match.
_THINKING_MODELS = re.compile(
    r"claude-(3-7-sonnet|sonnet-4|opus-4|haiku-4-5|(sonnet|opus|haiku)-[5-9])(\b|[-@.])"
)
_DATA_URL = re.compile(r"data:(?P<media_type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)
_TOOL_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_THINKING_TYPES = ("thinking", "redacted_thinking")
# What opens a conversation whose stored history starts with the assistant (after trimming, say).
CONVERSATION_START = "(conversation continues)"
MISSING_RESULT = "No result was recorded for this tool call."

Block = dict[str, Any]


def supports_thinking(model: str) -> bool:
    """Whether ``model`` has Anthropic's extended thinking."""
    return _THINKING_MODELS.search(model) is not None


def build_params(request: LLMRequest) -> dict[str, Any]:
    """The Messages API body for ``request`` (non-streaming; the caller adds nothing but the model)."""
    system, turns = _turns(request.messages)
    messages = _repair(_merge(turns))
    if not request.tools:
        messages = [_tools_as_text(m) for m in messages]
    thinking = thinking_for(request, messages)
    if not thinking:
        messages = _without_thinking(messages)
    params: dict[str, Any] = {"model": request.model, "messages": messages}
    if system:
        params["system"] = system
    max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
    if thinking:
        budget = max(request.reasoning_budget_tokens or MIN_THINKING_BUDGET, MIN_THINKING_BUDGET)
        # The budget is part of max_tokens; a max_tokens that leaves no room keeps its size for the answer.
        if max_tokens <= budget:
            max_tokens += budget
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
    params["max_tokens"] = max_tokens
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": _input_schema(t.parameters)}
            for t in request.tools
        ]
        choice: dict[str, Any] = {"type": "any" if request.tool_choice == "required" else "auto"}
        if request.parallel_tool_calls is False:
            choice["disable_parallel_tool_use"] = True
        if choice != {"type": "auto"}:
            params["tool_choice"] = choice
    return params


def thinking_for(request: LLMRequest, messages: list[dict[str, Any]]) -> bool:
    """Whether this request may think.

    Off unless asked for and the model has it. Also off, for this one request, when a tool rule
    forces a tool call (the API refuses forced tool use with thinking; the rule is a guarantee the
    agent was configured with, thinking is not), and when the assistant turn whose tool calls are
    being answered carries no signed thinking (it came from another model, or from a step that did
    not think): the API refuses that turn with thinking on, and a signature cannot be made up.
    """
    if not request.enable_thinking or not supports_thinking(request.model):
        return False
    if request.tools and request.tool_choice == "required":
        return False
    last = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    if last is not None and any(b["type"] == "tool_use" for b in last["content"]):
        return bool(last["content"]) and last["content"][0]["type"] in _THINKING_TYPES
    return True


def _turns(messages: list[dict[str, Any]]) -> tuple[str, list[tuple[str, list[Block]]]]:
    system: list[str] = []
    turns: list[tuple[str, list[Block]]] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            text = _plain_text(message.get("content"))
            if text.strip():
                system.append(text)
        elif role == "user":
            turns.append(("user", _user_blocks(message.get("content"))))
        elif role == "assistant":
            turns.append(("assistant", _assistant_blocks(message)))
        elif role == "tool":
            block: Block = {"type": "tool_result", "tool_use_id": _tool_id(message.get("tool_call_id"))}
            text = _plain_text(message.get("content"))
            if text.strip():
                block["content"] = text
            turns.append(("user", [block]))
        else:
            raise LLMError(f"cannot send a message with role {role!r} to Anthropic")
    return "\n\n".join(system), [(role, blocks) for role, blocks in turns if blocks]


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _user_blocks(content: Any) -> list[Block]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks: list[Block] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = str(part.get("text", ""))
            if text.strip():
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(image_block(str(url or "")))
    return blocks


def image_block(url: str) -> Block:
    """A ``data:`` URL as a base64 image source, an http(s) URL as a URL source."""
    match = _DATA_URL.fullmatch(url)
    if match is not None:
        source = {"type": "base64", "media_type": match["media_type"], "data": match["data"]}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise LLMError(f"Anthropic takes images as base64 data URLs or http(s) URLs, not {url[:40]!r}")


def _assistant_blocks(message: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    for piece in message.get("reasoning") or ():
        if piece.get("redacted"):
            blocks.append({"type": "redacted_thinking", "data": piece["redacted"]})
        elif piece.get("signature"):
            # Sent back exactly as it came: the signature covers the text.
            blocks.append(
                {"type": "thinking", "thinking": piece.get("text") or "", "signature": piece["signature"]}
            )
        # Unsigned reasoning (another provider's) cannot be sent: the API checks every signature.
    text = _plain_text(message.get("content"))
    if text.strip():
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": _tool_id(call.get("id")),
                "name": str(function.get("name", "")),
                "input": _tool_input(function.get("arguments")),
            }
        )
    # A turn of reasoning alone is refused (an assistant turn may not end with thinking).
    if all(b["type"] in _THINKING_TYPES for b in blocks):
        return []
    return blocks


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _tool_id(raw: Any) -> str:
    """Tool ids as the API takes them ([A-Za-z0-9_-]+): an id from another provider may carry more."""
    return _TOOL_ID_CHARS.sub("_", str(raw or "")) or "toolu_unknown"


def _input_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    if parameters.get("type") == "object":
        return parameters
    return {"properties": {}, **parameters, "type": "object"}


def _merge(turns: list[tuple[str, list[Block]]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for role, blocks in turns:
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    if not merged or merged[0]["role"] != "user":
        merged.insert(0, {"role": "user", "content": [{"type": "text", "text": CONVERSATION_START}]})
    return merged


def _repair(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair every tool call with its result as the API demands, and put each turn's blocks in the order
    it demands (thinking first in an assistant turn, tool results first in a user turn)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "assistant":
            message["content"] = _first(message["content"], _THINKING_TYPES)
            out.append(message)
            continue
        previous = out[-1] if out and out[-1]["role"] == "assistant" else None
        calls = [b["id"] for b in previous["content"] if b["type"] == "tool_use"] if previous else []
        content: list[Block] = []
        answered: set[str] = set()
        for block in message["content"]:
            if block["type"] != "tool_result":
                content.append(block)
            elif block["tool_use_id"] in calls and block["tool_use_id"] not in answered:
                answered.add(block["tool_use_id"])
                content.append(block)
            else:
                # A result whose call is gone (trimmed from the context) stays readable as text.
                content.append({"type": "text", "text": _result_text(block)})
        content += [_missing_result(call_id) for call_id in calls if call_id not in answered]
        message["content"] = _first(content, ("tool_result",))
        out.append(message)
    if out[-1]["role"] == "assistant" and any(b["type"] == "tool_use" for b in out[-1]["content"]):
        calls_left = [b["id"] for b in out[-1]["content"] if b["type"] == "tool_use"]
        out.append({"role": "user", "content": [_missing_result(c) for c in calls_left]})
    return out


def _missing_result(call_id: str) -> Block:
    return {"type": "tool_result", "tool_use_id": call_id, "content": MISSING_RESULT, "is_error": True}


def _first(blocks: list[Block], types: tuple[str, ...]) -> list[Block]:
    return [b for b in blocks if b["type"] in types] + [b for b in blocks if b["type"] not in types]


def _result_text(block: Block) -> str:
    return f"[result of tool call {block['tool_use_id']}]\n{block.get('content', '')}".rstrip()


def _tools_as_text(message: dict[str, Any]) -> dict[str, Any]:
    """Tool blocks as text, for a request that defines no tools (the API refuses tool blocks then)."""
    content: list[Block] = []
    for block in message["content"]:
        if block["type"] == "tool_use":
            call = f"[called tool {block['name']} ({block['id']}) with {json.dumps(block['input'])}]"
            content.append({"type": "text", "text": call})
        elif block["type"] == "tool_result":
            content.append({"type": "text", "text": _result_text(block)})
        else:
            content.append(block)
    return {**message, "content": content}


def _without_thinking(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        if message["role"] == "assistant":
            message = {
                **message,
                "content": [b for b in message["content"] if b["type"] not in _THINKING_TYPES],
            }
        out.append(message)
    return out


def to_response(message: Message) -> LLMResponse:
    """A Messages API answer as our neutral response."""
    texts: list[str] = []
    calls: list[LLMToolCall] = []
    reasoning: list[Reasoning] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "thinking":
            reasoning.append(Reasoning(text=block.thinking, signature=block.signature))
        elif block.type == "redacted_thinking":
            reasoning.append(Reasoning(redacted=block.data))
        elif block.type == "tool_use":
            calls.append(LLMToolCall(id=block.id, name=block.name, arguments=json.dumps(block.input)))
    usage = message.usage
    cache_read = usage.cache_read_input_tokens
    # Anthropic's input_tokens leaves out cached tokens; OpenAI's prompt_tokens (our convention) counts them.
    prompt = usage.input_tokens + (cache_read or 0) + (usage.cache_creation_input_tokens or 0)
    details = getattr(usage, "output_tokens_details", None)
    return LLMResponse(
        content="".join(texts) or None,
        tool_calls=calls,
        finish_reason=message.stop_reason,
        model=message.model,
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        cached_input_tokens=cache_read,
        reasoning_tokens=getattr(details, "thinking_tokens", None),
        reasoning=reasoning,
    )
