"""Anthropic's Messages API (Claude) through the official SDK; conversion lives in ``anthropic_convert``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import httpx2
from anthropic import NOT_GIVEN
from anthropic.lib.streaming import AsyncMessageStream
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent

from agenthost.llm.anthropic_convert import CLAUDE_CONTEXT_WINDOW, build_params, to_response
from agenthost.llm.base import Delta, DeltaSink, LLMClient, LLMError, LLMRequest, LLMResponse
from agenthost.llm.retry import error_message, retry_after, status_error, with_retries
from agenthost.llm.tokens import estimate_tokens

log = logging.getLogger(__name__)

_COUNT_TIMEOUT_S = 15.0


class AnthropicClient(LLMClient):
    """Claude models: extended thinking (signed reasoning sent back), tools, images, exact token counts."""

    provider_name = "anthropic"
    endpoint_type = "anthropic"
    streams_deltas = True

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        models: list[str],
        timeout_s: float,
        max_retries: int,
        retry_base_delay_s: float,
    ) -> None:
        # The SDK adds /v1 itself; a base URL copied with it (as OpenAI's are written) still works.
        root = base_url.rstrip("/").removesuffix("/v1") if base_url else None
        self.endpoint = root or "https://api.anthropic.com"
        self.configured_models = list(models)
        # The SDK's own retries are off: ours are bounded, logged, and end in a clear stop reason.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=root, timeout=timeout_s, max_retries=0
        )
        self._timeout = timeout_s
        self._max_retries = max_retries
        self._base_delay = retry_base_delay_s

    async def complete(self, request: LLMRequest, sink: DeltaSink | None = None) -> LLMResponse:
        body = build_params(request)
        # `post` rather than `messages.create`: no walk of the whole history through the SDK's
        # TypedDict transform, and none of its client-side refusals (long non-streaming requests).
        if sink is not None:
            send: Callable[[], Awaitable[Message]] = lambda: self._stream(body, sink)  # noqa: E731
        else:
            send = lambda: self._client.post("/v1/messages", body=body, cast_to=Message)  # noqa: E731
        message = await with_retries(
            send,
            _classify,
            max_retries=self._max_retries,
            base_delay_s=self._base_delay,
            label="anthropic",
        )
        return to_response(message)

    async def _stream(self, body: dict[str, Any], sink: DeltaSink) -> Message:
        """One streamed attempt: text and thinking go to ``sink`` as they arrive; the SDK's stream
        gathers the whole message. A retry starts the answer over (``sink.restart``)."""
        sink.restart()
        raw = await self._client.post(
            "/v1/messages",
            body={**body, "stream": True},
            cast_to=Message,
            stream=True,
            stream_cls=anthropic.AsyncStream[RawMessageStreamEvent],
        )
        stream = AsyncMessageStream(raw, NOT_GIVEN)
        # Reasoning pieces are numbered as in the response: thinking and redacted blocks, in order.
        reasoning_index: dict[int, int] = {}
        try:
            async for event in stream:
                if event.type == "content_block_start":
                    if event.content_block.type in ("thinking", "redacted_thinking"):
                        reasoning_index[event.index] = len(reasoning_index)
                elif event.type == "content_block_delta":
                    if event.delta.type == "text_delta":
                        sink.delta(Delta("content", event.delta.text))
                    elif event.delta.type == "thinking_delta":
                        sink.delta(Delta("reasoning", event.delta.thinking, reasoning_index[event.index]))
            return await stream.get_final_message()
        except httpx2.HTTPError as exc:
            # The connection broke mid-answer: as retryable as one that broke before it.
            raise LLMError(f"anthropic stream broke: {type(exc).__name__}: {exc}", retryable=True) from exc
        finally:
            await stream.close()

    async def count_tokens(self, request: LLMRequest) -> int:
        """Anthropic's exact count (its count endpoint); the estimate when that endpoint fails."""
        try:
            body = {k: v for k, v in build_params(request).items() if k != "max_tokens"}
        except LLMError:
            # A request that cannot be converted fails in `complete`, where the loop reports it.
            return estimate_tokens(request)
        try:
            # A count only guides compaction: a slow count endpoint must not hold the step for long.
            counted = await self._client.post(
                "/v1/messages/count_tokens",
                body=body,
                cast_to=MessageTokensCount,
                options={"timeout": min(self._timeout, _COUNT_TIMEOUT_S)},
            )
        except anthropic.AnthropicError as exc:
            log.warning("Anthropic token count failed (%s); using the estimate", exc)
            return estimate_tokens(request)
        return counted.input_tokens

    async def list_models(self) -> list[str]:
        return [model.id async for model in self._client.models.list(limit=1000)]

    def context_window(self, model: str) -> int | None:
        return CLAUDE_CONTEXT_WINDOW if model.startswith("claude") else None

    async def close(self) -> None:
        await self._client.close()


def _classify(exc: Exception) -> tuple[LLMError, float | None] | None:
    if isinstance(exc, LLMError):
        return exc, None
    if isinstance(exc, anthropic.APIStatusError):
        message = error_message(exc.body, exc.message, with_type=True)
        headers = exc.response.headers if exc.response is not None else None
        return status_error("anthropic", exc.status_code, message), retry_after(headers)
    if isinstance(exc, anthropic.APITimeoutError | anthropic.APIConnectionError):
        return LLMError(f"anthropic unreachable: {type(exc).__name__}: {exc}", retryable=True), None
    if isinstance(exc, anthropic.AnthropicError):
        return LLMError(f"anthropic request failed: {exc}"), None
    return None
