"""From our neutral request to what the local model sees, and from its output back to a response.

Tool calls use no model-specific format: when a request offers tools, the system prompt lists them
and asks for one JSON object, and the worker constrains the output with a grammar built from
``output_schema``, so the model can only write ``{"answer": "..."}`` or ``{"tool": "<an offered
tool>", "arguments": {...matching its parameters...}}``. Earlier calls and tool results in the
history are written in the same words, as plain chat messages: tool results become ``user``
messages, since chat templates of small models know no ``tool`` role (and some reject it).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from agenthost.llm.base import LLMError, LLMRequest, LLMToolCall, ToolSpec

ChatMessage = dict[str, str]


def reject_images(request: LLMRequest) -> None:
    """The local model has no vision: a request with an image fails clearly rather than silently."""
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") != "text" for part in content):
            raise LLMError(
                f"the local model '{request.model}' cannot read images; use a vision model "
                "(for example an openai/ or anthropic/ handle) for messages with images",
                status_code=400,
                retryable=False,
            )


def chat_messages(request: LLMRequest) -> list[ChatMessage]:
    """The request's messages as ``{"role", "content": str}`` pairs for the model's chat template.

    Roles are ``system``, ``user`` and ``assistant`` only; consecutive messages of one role are
    merged, as templates that insist on alternating turns require.
    """
    names = {
        call.get("id"): call.get("function", {}).get("name", "")
        for m in request.messages
        for call in m.get("tool_calls") or ()
    }
    out: list[ChatMessage] = []
    for message in request.messages:
        role = message.get("role")
        if role == "system":
            out.append({"role": "system", "content": _text(message.get("content"))})
        elif role == "user":
            out.append({"role": "user", "content": _text(message.get("content"))})
        elif role == "assistant":
            text = _text(message.get("content"))
            # With tools, the model writes JSON: its earlier turns are shown to it in that same form.
            if text and request.tools:
                text = json.dumps({"answer": text}, ensure_ascii=False)
            parts = [text, *(_call_text(call) for call in message.get("tool_calls") or ())]
            out.append({"role": "assistant", "content": "\n".join(p for p in parts if p)})
        elif role == "tool":
            name = names.get(message.get("tool_call_id")) or "a tool"
            out.append({"role": "user", "content": f"Result of {name}:\n{_text(message.get('content'))}"})
    if request.tools:
        instructions = tool_instructions(request.tools, required=request.tool_choice == "required")
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instructions}"}
        else:
            out.insert(0, {"role": "system", "content": instructions})
    merged: list[ChatMessage] = []
    for m in out:
        if merged and merged[-1]["role"] == m["role"]:
            merged[-1] = {"role": m["role"], "content": f"{merged[-1]['content']}\n\n{m['content']}"}
        else:
            merged.append(m)
    return merged


def tool_instructions(tools: list[ToolSpec], *, required: bool) -> str:
    lines = ["# Tools", ""]
    if required:
        lines.append(
            "You must call one of these tools. Reply with one JSON object: "
            '{"tool": "<tool name>", "arguments": {<the tool\'s arguments>}}'
        )
    else:
        lines.append(
            'Reply with one JSON object: {"answer": "<your reply to the user>"} to answer, or '
            '{"tool": "<tool name>", "arguments": {<the tool\'s arguments>}} to call a tool. '
            "Call a tool only when you need it; once you have a tool's result, answer the user."
        )
    lines.append("")
    for tool in tools:
        params = json.dumps(tool.parameters, separators=(",", ":"))
        lines.append(f"- {tool.name}: {tool.description}\n  arguments: {params}")
    return "\n".join(lines)


def output_schema(tools: list[ToolSpec], *, required: bool, strict: bool = True) -> dict[str, Any]:
    """The JSON schema of a valid output. ``strict=False`` accepts any JSON object as arguments: the
    fallback for parameter schemas the grammar converter cannot handle."""
    options: list[dict[str, Any]] = []
    if not required:
        options.append(_object({"answer": {"type": "string"}}))
    for tool in tools:
        params = _arguments_schema(tool.parameters) if strict else {"type": "object"}
        options.append(_object({"tool": {"const": tool.name}, "arguments": params}))
    return options[0] if len(options) == 1 else {"anyOf": options}


def parse_output(text: str, tools: list[ToolSpec], *, required: bool) -> tuple[str | None, list[LLMToolCall]]:
    """(content, tool calls) from the model's constrained output.

    Only a cut-off output (``max_tokens`` reached) fails to parse. A cut-off answer keeps what was
    written; a cut-off call cannot be completed, so a request that demanded a call then fails.
    """
    value = _loads_salvaged(text)
    if isinstance(value, dict):
        name = value.get("tool")
        if isinstance(name, str) and any(t.name == name for t in tools):
            arguments = value.get("arguments")
            args = json.dumps(arguments if isinstance(arguments, dict) else {}, ensure_ascii=False)
            return None, [LLMToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=name, arguments=args)]
        answer = value.get("answer")
        if isinstance(answer, str) and not required:
            return answer, []
    if required:
        raise LLMError(
            "the local model did not complete a tool call (its output was cut off at max_tokens): "
            f"{text[:200]!r}",
            retryable=True,
        )
    return text, []


def repeats_last_call(request: LLMRequest, call: LLMToolCall) -> bool:
    """Whether ``call`` is the same call (name and arguments) as the history's latest one.

    A very small model that has just seen a call's result tends to make the same call again, and again,
    until the run's step limit: the client then asks it for an answer instead."""
    for message in reversed(request.messages):
        if message.get("role") != "assistant" or not message.get("tool_calls"):
            continue
        last = message["tool_calls"][-1].get("function", {})
        if last.get("name") != call.name:
            return False
        try:
            return bool(json.loads(last.get("arguments") or "{}") == json.loads(call.arguments))
        except ValueError:
            return False
    return False


def _loads_salvaged(text: str) -> Any:
    for suffix in ("", '"}', "}", '"}}', "}}"):
        try:
            return json.loads(text + suffix)
        except ValueError:
            continue
    return None


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _arguments_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    if parameters.get("type", "object") == "object" and "properties" in parameters:
        # Without this, the converter takes a missing additionalProperties as "any extra key", which
        # lets a small model wander off into keys the tool does not take.
        return {"additionalProperties": False, **parameters}
    return parameters or {"type": "object"}


def _call_text(call: dict[str, Any]) -> str:
    function = call.get("function", {})
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = function.get("arguments")
    return json.dumps({"tool": function.get("name"), "arguments": arguments}, ensure_ascii=False)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    return ""
