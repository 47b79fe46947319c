"""OpenAI-compatible chat completions (OpenAI itself, vLLM, SGLang, Ollama, ...) via the official SDK."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from agenthost.llm.base import LLMClient, LLMError, LLMRequest, LLMResponse, LLMToolCall

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAICompatClient(LLMClient):
    endpoint_type = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        provider_name: str = "openai",
        timeout_s: float = 120.0,
        max_retries: int = 3,
        retry_base_delay_s: float = 0.5,
    ) -> None:
        self.provider_name = provider_name
        self.endpoint = base_url or "https://api.openai.com/v1"
        # The SDK's own retries are off: ours are bounded, logged, and end in a clear stop reason.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )
        self._max_retries = max_retries
        self._base_delay = retry_base_delay_s

    async def complete(self, request: LLMRequest) -> LLMResponse:
        kwargs: dict[str, Any] = {"model": request.model, "messages": request.messages}
        if request.tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
            if request.parallel_tool_calls is not None:
                kwargs["parallel_tool_calls"] = request.parallel_tool_calls
            if request.tool_choice is not None:
                kwargs["tool_choice"] = request.tool_choice
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.return_logprobs:
            kwargs["logprobs"] = True
            if request.top_logprobs is not None:
                kwargs["top_logprobs"] = request.top_logprobs
        attempt = 0
        while True:
            try:
                # `post` rather than `chat.completions.create`: the latter walks every message of the
                # request through the SDK's TypedDict transform, a cost that grows with the history.
                completion = await self._client.post("/chat/completions", body=kwargs, cast_to=ChatCompletion)
                return _to_response(completion)
            except openai.APIStatusError as exc:
                error = LLMError(
                    f"{self.provider_name} returned HTTP {exc.status_code}: {_error_message(exc)}",
                    status_code=exc.status_code,
                    retryable=exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500,
                )
                retry_after = _retry_after(exc)
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                error = LLMError(
                    f"{self.provider_name} unreachable: {type(exc).__name__}: {exc}", retryable=True
                )
                retry_after = None
            except openai.OpenAIError as exc:
                raise LLMError(f"{self.provider_name} request failed: {exc}") from exc
            if not error.retryable or attempt >= self._max_retries:
                if attempt:
                    error.args = (f"{error.args[0]} (after {attempt + 1} attempts)",)
                raise error
            delay = retry_after if retry_after is not None else self._base_delay * (2**attempt)
            delay = min(delay, 30.0) * (0.8 + 0.4 * random.random())
            log.warning("LLM call failed (%s); retry %d in %.2fs", error, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)

    async def list_models(self) -> list[str]:
        page = await self._client.models.list()
        return [m.id for m in page.data]

    async def close(self) -> None:
        await self._client.close()


def _to_response(completion: Any) -> LLMResponse:
    if not completion.choices:
        raise LLMError("the provider returned no choices")
    choice = completion.choices[0]
    message = choice.message
    calls = [
        LLMToolCall(id=tc.id, name=tc.function.name, arguments=tc.function.arguments or "{}")
        for tc in message.tool_calls or []
        if getattr(tc, "function", None) is not None
    ]
    usage = completion.usage
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    cdetails = getattr(usage, "completion_tokens_details", None) if usage else None
    reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
    logprobs = choice.logprobs.model_dump() if getattr(choice, "logprobs", None) is not None else None
    return LLMResponse(
        content=message.content,
        tool_calls=calls,
        finish_reason=choice.finish_reason,
        model=completion.model,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        total_tokens=usage.total_tokens if usage else 0,
        cached_input_tokens=getattr(details, "cached_tokens", None),
        reasoning_tokens=getattr(cdetails, "reasoning_tokens", None),
        reasoning=reasoning if isinstance(reasoning, str) else None,
        logprobs=logprobs,
    )


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
    return exc.message


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
