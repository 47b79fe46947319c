"""Turn an agent's stored Letta messages into the provider-neutral (OpenAI chat) message list."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agenthost.llm.base import Reasoning

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
        body = row.body
        if kind in ASSISTANT_SIDE and row.step_id is not None:
            if current is None or current_step != row.step_id:
                current = {"role": "assistant", "content": None}
                current_step = row.step_id
                out.append(current)
            _merge_assistant(current, kind, body)
            known_calls.update(c["id"] for c in current.get("tool_calls", ()))
            continue
        current, current_step = None, None
        if kind == "user_message":
            out.append({"role": "user", "content": _user_content(body.get("content", ""), images or {})})
        elif kind == "system_message":
            out.append({"role": "system", "content": str(body.get("content", ""))})
        elif kind == "assistant_message":
            # An assistant message the client sent itself (no step): plain text.
            out.append({"role": "assistant", "content": _text_of(body.get("content", ""))})
        elif kind == "tool_return_message" and body["tool_call_id"] in known_calls:
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": body["tool_call_id"],
                    "content": str(body.get("tool_return", "")),
                }
            )
        # approval_response_message rows are bookkeeping: their effect is in the tool returns that follow.
    return out


def _merge_assistant(msg: dict[str, Any], kind: str, body: dict[str, Any]) -> None:
    if kind == "assistant_message":
        text = _text_of(body.get("content", ""))
        msg["content"] = text if msg["content"] is None else f"{msg['content']}\n{text}"
    elif kind == "tool_call_message":
        msg.setdefault("tool_calls", []).append(_call(body["tool_call"]))
    elif kind == "approval_request_message":
        calls = body.get("tool_calls") or [body["tool_call"]]
        msg.setdefault("tool_calls", []).extend(_call(c) for c in calls)
    elif kind == "reasoning_message":
        msg.setdefault("reasoning", []).append(
            {"text": body.get("reasoning", ""), "signature": body.get("signature")}
        )
    elif kind == "hidden_reasoning_message" and body.get("hidden_reasoning"):
        msg.setdefault("reasoning", []).append({"redacted": body["hidden_reasoning"]})


def reasoning_dict(piece: Reasoning) -> dict[str, Any]:
    """A response's reasoning piece as the ``reasoning`` key of a neutral assistant message holds it."""
    if piece.redacted is not None:
        return {"redacted": piece.redacted}
    return {"text": piece.text or "", "signature": piece.signature}


def _call(call: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call["tool_call_id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": call.get("arguments") or "{}"},
    }


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def _user_content(content: Any, images: Mapping[str, str]) -> Any:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type", "text")
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image":
            url = _image_url(part["source"], images)
            if url is None:
                parts.append({"type": "text", "text": "[an image that is no longer stored]"})
                continue
            image: dict[str, Any] = {"url": url}
            if part["source"].get("detail"):
                image["detail"] = part["source"]["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            # Structured parts (tool calls/returns, reasoning) sent as input reach the model as JSON text.
            parts.append({"type": "text", "text": json.dumps(part)})
    return parts


def _image_url(source: dict[str, Any], images: Mapping[str, str]) -> str | None:
    if source.get("type") == "base64" or (source.get("type") == "letta" and source.get("data")):
        return f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    if source.get("type") == "letta":
        return images.get(source["file_id"])
    return str(source.get("url", ""))


def image_file_ids(rows: Iterable[Any]) -> set[str]:
    """The stored image files the user messages among ``rows`` show."""
    ids: set[str] = set()
    for row in rows:
        content = row.body.get("content") if row.message_type == "user_message" else None
        if isinstance(content, list):
            for part in content:
                source = part.get("source") if part.get("type") == "image" else None
                if source and source.get("type") == "letta" and not source.get("data"):
                    ids.add(source["file_id"])
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
