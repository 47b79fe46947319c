"""The provider interface and the provider-neutral request/response types.

Messages use the OpenAI chat format as the lingua franca; a provider with another wire format
converts at its edge:

- ``{"role": "system", "content": str}``
- ``{"role": "user", "content": str | [{"type": "text", "text": str} |
  {"type": "image_url", "image_url": {"url": "data:<media type>;base64,<data>" | "https://...",
  "detail"?: "low" | "high" | "auto"}}]}``
- ``{"role": "assistant", "content": str | None, "tool_calls"?: [{"id", "type": "function",
  "function": {"name", "arguments"}}], "reasoning"?: [{"text": str, "signature": str | None} |
  {"redacted": str}]}``. ``reasoning`` is our key, not OpenAI's: the reasoning that came with that
  response, for providers that must see it again (Anthropic's signed thinking blocks). A provider
  that takes no reasoning back drops the key.
- ``{"role": "tool", "tool_call_id": str, "content": str}``
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agenthost.llm.tokens import estimate_tokens


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


@dataclass(frozen=True, slots=True)
class Reasoning:
    """One piece of a response's reasoning: readable text (with the provider's signature, if any),
    or ``redacted``: opaque reasoning the provider encrypted, to be sent back as it came."""

    text: str | None = None
    signature: str | None = None
    redacted: str | None = None


@dataclass(slots=True)
class LLMRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[ToolSpec] = field(default_factory=list)
    max_tokens: int | None = None
    # Provider reasoning (Anthropic extended thinking, OpenAI reasoning effort) where the model has it.
    enable_thinking: bool = False
    reasoning_budget_tokens: int | None = None
    parallel_tool_calls: bool | None = None
    # "required" when a tool rule demands that the next response calls a tool.
    tool_choice: str | None = None
    return_logprobs: bool = False
    top_logprobs: int | None = None
    # Token ids and per-token logprobs of the output (SGLang's native /generate route).
    return_token_ids: bool = False


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
    reasoning: list[Reasoning] = field(default_factory=list)
    # OpenAI's shape: {"content": [{"token", "logprob", "bytes", "top_logprobs"}], "refusal": ...}
    logprobs: dict[str, Any] | None = None
    # With ``return_token_ids``: the generated token ids, and [[logprob, token_id, top|None], ...].
    output_ids: list[int] | None = None
    output_token_logprobs: list[list[Any]] | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a response as the provider streams it: assistant text (``content``) or the text of
    the ``index``-th reasoning piece (numbered as in ``LLMResponse.reasoning``)."""

    kind: Literal["content", "reasoning"]
    text: str
    index: int = 0


class DeltaSink(Protocol):
    """Where a streaming ``complete`` sends its deltas. Both calls are synchronous and cheap."""

    def delta(self, piece: Delta) -> None:
        """One more piece of the response being generated."""

    def restart(self) -> None:
        """The call is retried from scratch: the pieces sent so far belong to a response that was not
        finished."""


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
    # What GET /v1/models/ lists when the provider cannot list its own models.
    configured_models: list[str]

    # Whether ``complete`` streams deltas to a sink; the others answer whole, and ignore it.
    streams_deltas: bool = False

    @abstractmethod
    async def complete(self, request: LLMRequest, sink: DeltaSink | None = None) -> LLMResponse:
        """One chat completion. Raises ``LLMError``; cancellation aborts the HTTP call.

        With a ``sink``, a client that ``streams_deltas`` asks the provider to stream and sends each
        piece to the sink as it arrives; the response it returns is the same whole response.
        """

    @abstractmethod
    async def list_models(self) -> list[str]:
        """The model names this provider serves."""

    async def count_tokens(self, request: LLMRequest) -> int:
        """The prompt tokens ``request`` would cost. The default is an estimate from the text
        (``llm/tokens.py``); a provider that can count exactly overrides this."""
        return estimate_tokens(request)

    def context_window(self, model: str) -> int | None:
        """The model's context window in tokens, if this provider knows it."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
