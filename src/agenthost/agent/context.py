"""Turn an agent's stored Letta messages into the provider-neutral (OpenAI chat) message list."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agenthost.llm.base import Reasoning
from agenthost.schemas.content import (
    ContentPart,
    ImageContent,
    ImageSource,
    LettaImageSource,
    TextContent,
    UrlImageSource,
)
from agenthost.schemas.letta_messages import (
    ApprovalRequestMessageBody,
    AssistantMessageBody,
    HiddenReasoningMessageBody,
    MessageBody,
    ReasoningMessageBody,
    SystemMessageBody,
    ToolCall,
    ToolCallMessageBody,
    ToolReturnMessageBody,
    UserMessageBody,
    parse_body,
)

# The message types one LLM response is stored as (merged back into one assistant message).
ASSISTANT_SIDE = {
    "assistant_message",
    "tool_call_message",
    "approval_request_message",
    "reasoning_message",
    "hidden_reasoning_message",
}


def llm_messages(rows: Sequence[Any], images: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows of one agent in order → chat messages. Rows of one LLM response (same step) merge into one.

    ``images`` maps the stored image files the rows name to their data URLs (``image_file_ids``).
    Compaction records (``summary_message``, ``event_message``) are not part of the context: the
    current summary reaches the model through ``summary_message`` below.
    """
    out: list[dict[str, Any]] = []
    # Tool results whose call is not in the history (its run was deleted) would make the request
    # invalid for every provider; they are left out.
    known_calls: set[str] = set()
    current: dict[str, Any] | None = None
    current_step: str | None = None
    for row in rows:
        kind = row.message_type
        if kind not in _IN_CONTEXT:
            # approval_response_message rows are bookkeeping: their effect is in the tool returns that
            # follow. Compaction records reach the model as the thread's summary.
            current, current_step = None, None
            continue
        body = parse_body(kind, row.body)
        if kind in ASSISTANT_SIDE and row.step_id is not None:
            if current is None or current_step != row.step_id:
                current = {"role": "assistant", "content": None}
                current_step = row.step_id
                out.append(current)
            _merge_assistant(current, body)
            known_calls.update(c["id"] for c in current.get("tool_calls", ()))
            continue
        current, current_step = None, None
        if isinstance(body, UserMessageBody):
            out.append({"role": "user", "content": _user_content(body.content, images or {})})
        elif isinstance(body, SystemMessageBody):
            out.append({"role": "system", "content": _system_text(body.content)})
        elif isinstance(body, AssistantMessageBody):
            # An assistant message the client sent itself (no step): plain text.
            out.append({"role": "assistant", "content": _text_of(body.content)})
        elif isinstance(body, ToolReturnMessageBody) and body.tool_call_id in known_calls:
            out.append({"role": "tool", "tool_call_id": body.tool_call_id, "content": body.tool_return})
    return out


# The message types the context is built from.
_IN_CONTEXT = ASSISTANT_SIDE | {"user_message", "system_message", "tool_return_message"}


def _merge_assistant(msg: dict[str, Any], body: MessageBody) -> None:
    if isinstance(body, AssistantMessageBody):
        text = _text_of(body.content)
        msg["content"] = text if msg["content"] is None else f"{msg['content']}\n{text}"
    elif isinstance(body, ToolCallMessageBody):
        msg.setdefault("tool_calls", []).append(_call(body.tool_call))
    elif isinstance(body, ApprovalRequestMessageBody):
        msg.setdefault("tool_calls", []).extend(_call(c) for c in body.calls())
    elif isinstance(body, ReasoningMessageBody):
        msg.setdefault("reasoning", []).append({"text": body.reasoning, "signature": body.signature})
    elif isinstance(body, HiddenReasoningMessageBody) and body.hidden_reasoning:
        msg.setdefault("reasoning", []).append({"redacted": body.hidden_reasoning})


def reasoning_dict(piece: Reasoning) -> dict[str, Any]:
    """A response's reasoning piece as the ``reasoning`` key of a neutral assistant message holds it."""
    if piece.redacted is not None:
        return {"redacted": piece.redacted}
    return {"text": piece.text or "", "signature": piece.signature}


def _call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.tool_call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments or "{}"},
    }


def _text_of(content: str | list[ContentPart]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.text for p in content if isinstance(p, TextContent))


def _system_text(content: str | list[ContentPart]) -> str:
    if isinstance(content, str):
        return content
    # Parts a client sent as a system message reach the model as the list earlier versions showed.
    return str([p.model_dump(mode="json", exclude_unset=True) for p in content])


def _user_content(content: str | list[ContentPart], images: Mapping[str, str]) -> Any:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextContent):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImageContent):
            url = _image_url(part.source, images)
            if url is None:
                parts.append({"type": "text", "text": "[an image that is no longer stored]"})
                continue
            image: dict[str, Any] = {"url": url}
            detail = None if isinstance(part.source, UrlImageSource) else part.source.detail
            if detail:
                image["detail"] = detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            # Structured parts (tool calls/returns, reasoning) sent as input reach the model as JSON text.
            parts.append(
                {"type": "text", "text": json.dumps(part.model_dump(mode="json", exclude_unset=True))}
            )
    return parts


def _image_url(source: ImageSource, images: Mapping[str, str]) -> str | None:
    if isinstance(source, UrlImageSource):
        return source.url
    if source.data:
        return f"data:{source.media_type or 'image/png'};base64,{source.data}"
    return images.get(source.file_id) if isinstance(source, LettaImageSource) else None


def image_file_ids(rows: Iterable[Any]) -> set[str]:
    """The stored image files the user messages among ``rows`` show."""
    ids: set[str] = set()
    for row in rows:
        # Only a user message with parts can show an image: the others are not read with the model,
        # since this runs over the whole history in every run's start transaction.
        if row.message_type != "user_message" or not isinstance(row.body.get("content"), list):
            continue
        content = UserMessageBody.model_validate(row.body).content
        for part in () if isinstance(content, str) else content:
            source = part.source if isinstance(part, ImageContent) else None
            if isinstance(source, LettaImageSource) and not source.data:
                ids.add(source.file_id)
    return ids


def summary_message(summary: str) -> dict[str, Any]:
    """The compacted past as the model sees it: a user message right after the system prompt."""
    return {
        "role": "user",
        "content": (
            "[system] Earlier messages of this conversation were compacted out of the context window "
            "(they remain searchable with conversation_search). Summary of them:\n" + summary
        ),
    }
