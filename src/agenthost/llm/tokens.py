"""A provider-neutral estimate of how many tokens a request's prompt costs.

BPE tokenizers of current chat models average about four characters of English text per token; the
estimate counts characters of the text the model sees (content, tool calls and tool schemas) plus a
small overhead per message, and a fixed cost per image. It errs high on purpose: an estimate that is
too low lets a request overflow the context window, one that is too high only compacts a little early.
Providers that can count exactly (the local model's tokenizer, Anthropic's count endpoint) override
``LLMClient.count_tokens``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agenthost.llm.base import LLMRequest

CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD = 4
IMAGE_TOKENS = 800


def estimate_text(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def estimate_message(message: dict[str, Any]) -> int:
    tokens = MESSAGE_OVERHEAD
    content = message.get("content")
    if isinstance(content, str):
        tokens += estimate_text(content)
    elif isinstance(content, list):
        for part in content:
            if part.get("type") == "text":
                tokens += estimate_text(str(part.get("text", "")))
            else:
                tokens += IMAGE_TOKENS
    for call in message.get("tool_calls") or ():
        function = call.get("function", {})
        tokens += estimate_text(str(function.get("name", "")))
        tokens += estimate_text(str(function.get("arguments", "")))
    for piece in message.get("reasoning") or ():
        tokens += estimate_text(str(piece.get("text") or piece.get("redacted") or ""))
    return tokens


def estimate_tokens(request: LLMRequest) -> int:
    total = sum(estimate_message(m) for m in request.messages)
    for tool in request.tools:
        total += estimate_text(tool.name) + estimate_text(tool.description)
        total += estimate_text(json.dumps(tool.parameters, separators=(",", ":")))
    return total
