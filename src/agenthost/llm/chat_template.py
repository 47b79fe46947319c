"""ChatML prompts with Hermes-style tools, and parsing a completion back, for raw-text generation routes.

SGLang's native ``/generate`` takes a rendered prompt rather than chat messages, so the client renders
the template itself. The format is the one Qwen2.5/Qwen3 (and other Hermes-style tool models) are
trained on and SGLang's ``qwen25``/``hermes`` tool parsers read:

- every message is ``<|im_start|>{role}\\n{content}<|im_end|>\\n``;
- the tools are listed, one JSON object per line, inside ``<tools></tools>`` at the end of the first
  system message, with an instruction to answer calls as ``<tool_call>{"name", "arguments"}</tool_call>``;
- an assistant's calls follow its text, each as ``<tool_call>\\n{json}\\n</tool_call>``;
- tool results go back in a ``user`` turn, each wrapped in ``<tool_response></tool_response>``
  (consecutive results share one turn);
- reasoning is ``<think>…</think>`` before the answer. As Qwen3's template does, the reasoning of
  earlier exchanges is left out and only that of assistant turns after the last user message is
  rendered; with thinking switched off the generation prompt carries an empty think block.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from agenthost.llm.base import LLMToolCall, ToolSpec

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
IMAGE_PLACEHOLDER = "[image]"

# Our wording of the tool instruction; the tags and the JSON shape are what the parsers rely on.
_TOOLS_HEADER = (
    "# Tools\n\n"
    "You may call one or more functions to help with the request.\n\n"
    "The available function signatures are inside <tools></tools> XML tags:\n<tools>"
)
_TOOLS_FOOTER = (
    "</tools>\n\n"
    "To call a function, answer with a JSON object holding the function name and its arguments "
    "inside <tool_call></tool_call> XML tags:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_UNCLOSED_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*\})\s*$", re.DOTALL)


@dataclass(slots=True)
class ParsedOutput:
    """A completion's text split into its parts."""

    content: str | None
    reasoning: str | None = None
    tool_calls: list[LLMToolCall] = field(default_factory=list)


def render_chatml(
    messages: list[dict[str, Any]],
    tools: list[ToolSpec] | None = None,
    *,
    enable_thinking: bool | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """Our neutral messages (``llm/base.py``) as one ChatML prompt.

    ``enable_thinking``: ``False`` opens the answer with an empty think block (how Qwen3 switches
    thinking off); ``None`` or ``True`` leave the choice to the model.
    """
    tool_block = _tools_block(tools or [])
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    parts: list[str] = []
    if tool_block and (not messages or messages[0].get("role") != "system"):
        parts.append(f"{IM_START}system\n{tool_block}{IM_END}\n")
    i = 0
    while i < len(messages):
        message = messages[i]
        role = message.get("role")
        if role == "tool":
            # Consecutive tool results share one user turn.
            results: list[str] = []
            while i < len(messages) and messages[i].get("role") == "tool":
                results.append(f"<tool_response>\n{_text(messages[i].get('content'))}\n</tool_response>")
                i += 1
            parts.append(f"{IM_START}user\n" + "\n".join(results) + f"{IM_END}\n")
            continue
        if role == "system":
            text = _text(message.get("content"))
            if i == 0 and tool_block:
                text = f"{text}\n\n{tool_block}" if text else tool_block
            parts.append(f"{IM_START}system\n{text}{IM_END}\n")
        elif role == "assistant":
            parts.append(
                f"{IM_START}assistant\n{_assistant_text(message, with_reasoning=i > last_user)}{IM_END}\n"
            )
        else:
            parts.append(f"{IM_START}{role}\n{_text(message.get('content'))}{IM_END}\n")
        i += 1
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
        if enable_thinking is False:
            parts.append(f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n")
    return "".join(parts)


def render_tool_call(name: str, arguments: str | dict[str, Any]) -> str:
    """One call as the model writes it. ``arguments`` JSON text is kept as the model produced it."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return (
        f'<tool_call>\n{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {args}}}\n</tool_call>'
    )


def parse_output(text: str) -> ParsedOutput:
    """Split a completion into reasoning, answer text and tool calls.

    The think block may lack its opening tag (templates that open it in the generation prompt), or its
    closing tag (output cut off): then all the text is reasoning. A ``<tool_call>`` whose body is not a
    JSON object with a ``name`` stays in the text, so nothing the model wrote is lost.
    """
    reasoning: str | None = None
    if THINK_CLOSE in text:
        head, _, text = text.partition(THINK_CLOSE)
        reasoning = head.split(THINK_OPEN, 1)[1] if THINK_OPEN in head else head
    elif text.lstrip().startswith(THINK_OPEN):
        reasoning, text = text.lstrip()[len(THINK_OPEN) :], ""
    calls: list[LLMToolCall] = []

    def take(match: re.Match[str]) -> str:
        call = _tool_call(match.group(1))
        if call is None:
            return match.group(0)
        calls.append(call)
        return ""

    text = _TOOL_CALL.sub(take, text)
    # A last call cut off before its closing tag still counts if its JSON is whole.
    text = _UNCLOSED_TOOL_CALL.sub(take, text)
    content = text.strip() or None
    reasoning = reasoning.strip() if reasoning is not None else None
    return ParsedOutput(content=content, reasoning=reasoning or None, tool_calls=calls)


def _tool_call(body: str) -> LLMToolCall | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    args = data.get("arguments", data.get("parameters", {}))
    arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return LLMToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=data["name"], arguments=arguments)


def _tools_block(tools: list[ToolSpec]) -> str:
    if not tools:
        return ""
    lines = [
        json.dumps(
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            },
            ensure_ascii=False,
        )
        for t in tools
    ]
    return _TOOLS_HEADER + "\n" + "\n".join(lines) + "\n" + _TOOLS_FOOTER


def _assistant_text(message: dict[str, Any], *, with_reasoning: bool) -> str:
    content = _text(message.get("content"))
    # The first call goes on a new line only after text (the think block does not count).
    calls = [
        render_tool_call(
            str(c.get("function", {}).get("name", "")), c.get("function", {}).get("arguments") or "{}"
        )
        for c in message.get("tool_calls") or ()
    ]
    if calls:
        content = "\n".join([content, *calls]) if content else "\n".join(calls)
    if with_reasoning:
        thoughts = [p["text"] for p in message.get("reasoning") or () if p.get("text")]
        if thoughts:
            reasoning = "\n".join(thoughts).strip("\n")
            content = f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{content.lstrip(chr(10))}"
    return content


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Images have no place in a text prompt; a marker keeps the turn's shape visible to the model.
        return "".join(
            str(p.get("text", "")) if p.get("type") == "text" else IMAGE_PLACEHOLDER
            for p in content
            if isinstance(p, dict)
        )
    return str(content)
