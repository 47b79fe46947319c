"""Runs and steps on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agenthost.schemas.common import MessageType, RunStatus, StopReason, WireModel


class RequestConfig(BaseModel):
    use_assistant_message: bool | None = None
    assistant_message_tool_name: str | None = None
    assistant_message_tool_kwarg: str | None = None
    include_return_message_types: list[MessageType] | None = None


class Run(BaseModel):
    id: str
    agent_id: str
    conversation_id: str | None = None
    status: RunStatus
    stop_reason: StopReason | None = None
    background: bool | None = None
    request_config: RequestConfig | None = None
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None
    callback_sent_at: datetime | None = None
    callback_status_code: int | None = None
    callback_error: str | None = None
    ttft_ns: int | None = None
    total_duration_ns: int | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None


class TokenDetails(BaseModel):
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


class RunUsage(BaseModel):
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int
    prompt_tokens_details: TokenDetails | None = None
    completion_tokens_details: TokenDetails | None = None


class Step(BaseModel):
    id: str
    run_id: str | None = None
    agent_id: str | None = None
    model: str | None = None
    model_handle: str | None = None
    model_endpoint: str | None = None
    provider_name: str | None = None
    context_window_limit: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    status: str | None = None
    stop_reason: StopReason | None = None
    error_type: str | None = None
    error_data: dict[str, Any] | None = None
    created_at: datetime | None = None


class RetrieveStreamRequest(WireModel):
    """The body of ``POST /v1/runs/{run_id}/stream``: where to start and how to wait."""

    starting_after: int = Field(default=0, ge=0)
    include_pings: bool | None = True
    poll_interval: float | None = Field(default=0.1, gt=0, le=60)
    batch_size: int | None = Field(default=100, ge=1, le=1000)
    # Letta's lookups for its conversation routes; the run id in the path is what is followed here.
    agent_id: str | None = None
    run_id: str | None = None
    otid: str | None = None
