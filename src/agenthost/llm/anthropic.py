"""Anthropic's Messages API (Claude) through the official SDK; conversion lives in ``anthropic_convert``."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import anthropic
from anthropic.types import Message, MessageTokensCount

from agenthost.llm.anthropic_convert import CLAUDE_CONTEXT_WINDOW, build_params, to_response
from agenthost.llm.base import LLMClient, LLMError, LLMRequest, LLMResponse
from agenthost.llm.tokens import estimate_tokens

log = logging.getLogger(__name__)

# 529 is Anthropic's "overloaded"; 408/409 are worth another try as with every provider.
_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
_MAX_DELAY_S = 30.0
_COUNT_TIMEOUT_S = 15.0


class AnthropicClient(LLMClient):
    """Claude models: extended thinking (signed reasoning sent back), tools, images, exact token counts."""

    provider_name = "anthropic"
    endpoint_type = "anthropic"

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

    async def complete(self, request: LLMRequest) -> LLMResponse:
        body = build_params(request)
        attempt = 0
        while True:
            try:
                # `post` rather than `messages.create`: no walk of the whole history through the SDK's
                # TypedDict transform, and none of its client-side refusals (long non-streaming requests).
                message = await self._client.post("/v1/messages", body=body, cast_to=Message)
                return to_response(message)
            except anthropic.APIStatusError as exc:
                error = LLMError(
                    f"anthropic returned HTTP {exc.status_code}: {_error_message(exc)}",
                    status_code=exc.status_code,
                    retryable=exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500,
                )
                retry_after = _retry_after(exc)
            except (anthropic.APITimeoutError, anthropic.APIConnectionError) as exc:
                error = LLMError(f"anthropic unreachable: {type(exc).__name__}: {exc}", retryable=True)
                retry_after = None
            except anthropic.AnthropicError as exc:
                raise LLMError(f"anthropic request failed: {exc}") from exc
            if not error.retryable or attempt >= self._max_retries:
                if attempt:
                    error.args = (f"{error.args[0]} (after {attempt + 1} attempts)",)
                raise error
            delay = retry_after if retry_after is not None else self._base_delay * (2**attempt)
            delay = min(delay, _MAX_DELAY_S) * (0.8 + 0.4 * random.random())
            log.warning("Anthropic call failed (%s); retry %d in %.2fs", error, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)

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


def _error_message(exc: anthropic.APIStatusError) -> str:
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and "message" in inner:
            kind = inner.get("type")
            return f"{kind}: {inner['message']}" if kind else str(inner["message"])
    return exc.message


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    headers = exc.response.headers if exc.response is not None else {}
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000.0
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except ValueError:
        return None
