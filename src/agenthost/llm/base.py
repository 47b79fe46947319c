"""The provider interface and the provider-neutral request/response types.

Messages use the OpenAI chat format (``role``/``content``/``tool_calls``/``tool_call_id``) as the
lingua franca; a provider with another wire format converts at its edge.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LLMToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model produced it; parsed (and validated) by the loop


@dataclass(slots=True)
class LLMRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[ToolSpec] = field(default_factory=list)
    max_tokens: int | None = None
    enable_thinking: bool = False
    parallel_tool_calls: bool | None = None
    # "required" when a tool rule demands that the next response calls a tool.
    tool_choice: str | None = None
    return_logprobs: bool = False
    top_logprobs: int | None = None


@dataclass(slots=True)
class LLMResponse:
    content: str | None
    tool_calls: list[LLMToolCall]
    finish_reason: str | None
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    reasoning: str | None = None
    logprobs: dict[str, Any] | None = None


class LLMError(Exception):
    """The provider failed after our retries (or with an error retrying cannot fix)."""

    def __init__(self, message: str, *, status_code: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable


class LLMClient(ABC):
    """An authenticated client to one provider API."""

    provider_name: str
    endpoint_type: str
    endpoint: str | None

    @abstractmethod
    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One chat completion. Raises ``LLMError``; cancellation aborts the HTTP call."""

    @abstractmethod
    async def list_models(self) -> list[str]:
        """The model names this provider serves."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
