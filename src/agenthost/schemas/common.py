"""Shared pieces of the wire schemas."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

MessageType = Literal[
    "system_message",
    "user_message",
    "assistant_message",
    "reasoning_message",
    "hidden_reasoning_message",
    "tool_call_message",
    "tool_return_message",
    "approval_request_message",
    "approval_response_message",
    "summary_message",
    "event_message",
]

StopReason = Literal[
    "end_turn",
    "error",
    "llm_api_error",
    "invalid_llm_response",
    "invalid_tool_call",
    "max_steps",
    "max_tokens_exceeded",
    "no_tool_call",
    "tool_rule",
    "cancelled",
    "insufficient_credits",
    "requires_approval",
    "context_window_overflow_in_system_prompt",
]

RunStatus = Literal["created", "running", "completed", "failed", "cancelled"]
Order = Literal["asc", "desc"]


class WireModel(BaseModel):
    """Base of request bodies: unknown fields are ignored, as Letta's server does."""

    model_config = ConfigDict(extra="ignore")
