"""OpenAI-compatible chat completions (OpenAI itself, vLLM, SGLang, Ollama, ...) via the official SDK."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import openai
from openai.types.chat import ChatCompletion

from agenthost.llm.base import (
    DeltaSink,
    LLMClient,
    LLMError,
    LLMRequest,
    LLMResponse,
    LLMToolCall,
    Reasoning,
)
from agenthost.llm.openai_stream import ChunkGatherer
from agenthost.llm.retry import error_message, retry_after, status_error, with_retries

log = logging.getLogger(__name__)

T = TypeVar("T")

# Keys under which OpenAI-compatible servers report a model's context window in GET /models:
# vLLM and SGLang (max_model_len), OpenRouter and LM Studio (context_length), Groq (context_window).
_WINDOW_KEYS = ("max_model_len", "context_length", "context_window")

# OpenAI's reasoning models, by name (after any ``vendor/`` prefix, as OpenRouter names them), and the
# ``reasoning_effort`` each takes with thinking off and on. Off is the lowest effort the model
# accepts: reasoning cannot be switched off on these models, only made short. First match wins.
_REASONING_EFFORTS: tuple[tuple[re.Pattern[str], str | None, str | None], ...] = (
    (re.compile(r"o1-(mini|preview)"), None, None),  # no reasoning_effort parameter at all
    (re.compile(r"gpt-5-pro"), "high", "high"),  # the only effort it takes
    (re.compile(r"gpt-5(\.\d+)?-codex"), "low", "medium"),
    (re.compile(r"gpt-5\.\d+(?!\d|-chat)"), "none", "medium"),  # 5.1 and later can skip reasoning
    (re.compile(r"gpt-5(?!\.|-chat)"), "minimal", "medium"),
    (re.compile(r"o[134](-|$)"), "low", "medium"),
    (re.compile(r"gpt-oss"), "low", "medium"),  # open weights, served by vLLM/SGLang/Ollama
)
# OpenAI's own reasoning families reject ``max_tokens`` and take ``max_completion_tokens``.
_COMPLETION_TOKENS = re.compile(r"o[134](-|$)|gpt-5(?!(\.\d+)?-chat)")


def _base_name(model: str) -> str:
    return model.rsplit("/", 1)[-1].lower()


def reasoning_effort(model: str, enable_thinking: bool) -> str | None:
    """The ``reasoning_effort`` to send: ``"medium"`` with thinking on, the model's lowest effort with
    it off; ``None`` for a model that takes no effort (not a reasoning model, or o1-mini/o1-preview)."""
    name = _base_name(model)
    for pattern, off, on in _REASONING_EFFORTS:
        if pattern.match(name):
            return on if enable_thinking else off
    return None


class OpenAICompatClient(LLMClient):
    """Chat completions against OpenAI or any server that speaks its API.

    ``thinking_kwarg`` is for servers that render the chat template themselves (vLLM, SGLang,
    llama.cpp server) serving a model whose template has a thinking switch: each request then carries
    ``chat_template_kwargs: {thinking_kwarg: enable_thinking}`` (``"enable_thinking"`` for Qwen3,
    ``"thinking"`` for DeepSeek-V3.1). Unset, nothing is sent and the template's default holds.
    """

    endpoint_type = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        provider_name: str = "openai",
        models: list[str] | None = None,
        context_window: int | None = None,
        thinking_kwarg: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        retry_base_delay_s: float = 0.5,
    ) -> None:
        self.provider_name = provider_name
        self.configured_models = list(models or [])
        self._context_window = context_window
        self._listed_windows: dict[str, int] = {}
        self.thinking_kwarg = thinking_kwarg
        self.endpoint = base_url or "https://api.openai.com/v1"
        # The SDK's own retries are off: ours are bounded, logged, and end in a clear stop reason.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )
        self._max_retries = max_retries
        self._base_delay = retry_base_delay_s

    streams_deltas = True

    async def complete(self, request: LLMRequest, sink: DeltaSink | None = None) -> LLMResponse:
        body = self.chat_body(request)
        if sink is not None:
            return _to_response(await self._with_retries(lambda: self._stream(body, sink)))
        # `post` rather than `chat.completions.create`: the latter walks every message of the
        # request through the SDK's TypedDict transform, a cost that grows with the history.
        completion = await self._with_retries(
            lambda: self._client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        )
        return _to_response(completion)

    async def _stream(self, body: dict[str, Any], sink: DeltaSink) -> ChatCompletion:
        """One streamed attempt; a retry starts the answer over (``sink.restart``)."""
        sink.restart()
        stream = await self._client.post(
            "/chat/completions",
            body={**body, "stream": True, "stream_options": {"include_usage": True}},
            # Each chunk as plain JSON (see ChunkGatherer.add).
            cast_to=object,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        return await ChunkGatherer(sink, self.provider_name).gather(stream)

    def chat_body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body of ``POST /chat/completions`` for ``request``."""
        body: dict[str, Any] = {"model": request.model, "messages": _wire_messages(request.messages)}
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
        if request.max_tokens is not None:
            key = (
                "max_completion_tokens"
                if _COMPLETION_TOKENS.match(_base_name(request.model))
                else "max_tokens"
            )
            body[key] = request.max_tokens
        effort = reasoning_effort(request.model, request.enable_thinking)
        if effort is not None:
            body["reasoning_effort"] = effort
        if self.thinking_kwarg:
            body["chat_template_kwargs"] = {self.thinking_kwarg: request.enable_thinking}
        if request.return_logprobs:
            body["logprobs"] = True
            if request.top_logprobs is not None:
                body["top_logprobs"] = request.top_logprobs
        return body

    async def _with_retries(self, send: Callable[[], Awaitable[T]]) -> T:
        """``send()`` under the shared retry policy (``llm/retry.py``)."""
        return await with_retries(
            send,
            self._classify,
            max_retries=self._max_retries,
            base_delay_s=self._base_delay,
            label=self.provider_name,
        )

    def _classify(self, exc: Exception) -> tuple[LLMError, float | None] | None:
        name = self.provider_name
        if isinstance(exc, LLMError):
            return exc, None
        if isinstance(exc, openai.APIStatusError):
            message = error_message(exc.body, exc.message)
            headers = exc.response.headers if exc.response is not None else None
            return status_error(name, exc.status_code, message), retry_after(headers)
        if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
            return LLMError(f"{name} unreachable: {type(exc).__name__}: {exc}", retryable=True), None
        if isinstance(exc, openai.OpenAIError):
            return LLMError(f"{name} request failed: {exc}"), None
        return None

    async def list_models(self) -> list[str]:
        page = await self._client.models.list()
        for entry in page.data:
            extra = entry.model_extra or {}
            window = next((extra[k] for k in _WINDOW_KEYS if isinstance(extra.get(k), int)), None)
            if window:
                self._listed_windows[entry.id] = window
        return [m.id for m in page.data]

    def context_window(self, model: str) -> int | None:
        """The configured window, else what the server's model listing reported (once listed)."""
        return self._context_window or self._listed_windows.get(model)

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
    # vLLM (before 0.11) and SGLang say reasoning_content; newer vLLM, Ollama and OpenRouter say reasoning.
    reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
    raw_logprobs = getattr(choice, "logprobs", None)
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
        reasoning=[Reasoning(text=reasoning)] if isinstance(reasoning, str) and reasoning else [],
        logprobs=openai_logprobs(raw_logprobs.model_dump()) if raw_logprobs is not None else None,
    )


def openai_logprobs(raw: dict[str, Any]) -> dict[str, Any]:
    """A choice's ``logprobs`` reduced to exactly OpenAI's shape, whatever extra keys a server adds:
    ``{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}] | None,
    "refusal": [...] | None}``. ``bytes`` is the token's UTF-8 when the server leaves the key out."""

    def entry(item: dict[str, Any], *, top: bool) -> dict[str, Any]:
        token = str(item.get("token") or "")
        out: dict[str, Any] = {
            "token": token,
            "logprob": float(item.get("logprob") or 0.0),
            "bytes": item["bytes"] if "bytes" in item else list(token.encode()),
        }
        if top:
            out["top_logprobs"] = [entry(t, top=False) for t in item.get("top_logprobs") or ()]
        return out

    def tokens(items: Any) -> list[dict[str, Any]] | None:
        return [entry(i, top=True) for i in items if isinstance(i, dict)] if isinstance(items, list) else None

    return {"content": tokens(raw.get("content")), "refusal": tokens(raw.get("refusal"))}


def _wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our neutral messages as OpenAI takes them: without the ``reasoning`` key it does not know."""
    return [{k: v for k, v in m.items() if k != "reasoning"} if "reasoning" in m else m for m in messages]
