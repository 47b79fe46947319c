"""A streamed chat completion, gathered back into the whole ``ChatCompletion`` it stands for.

Each chunk's text and reasoning go to the run's delta sink as they arrive; tool calls (assembled from
their argument fragments by ``index``), the finish reason, logprobs and usage (the last chunk, with
``stream_options.include_usage``) are kept for the whole response.
"""

from __future__ import annotations

from typing import Any

import httpx2
from openai import AsyncStream
from openai.types.chat import ChatCompletion

from agenthost.llm.base import Delta, DeltaSink, LLMError

# vLLM (before 0.11) and SGLang say reasoning_content; newer vLLM, Ollama and OpenRouter say reasoning.
_REASONING_KEYS = ("reasoning_content", "reasoning")


class ChunkGatherer:
    def __init__(self, sink: DeltaSink, label: str) -> None:
        self._sink = sink
        self._label = label
        self.id = ""
        self.model = ""
        self.created = 0
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.logprobs: list[Any] | None = None
        self.usage: dict[str, Any] | None = None

    async def gather(self, stream: AsyncStream[object]) -> ChatCompletion:
        """Read the whole stream (closing it however this ends) and return the completion."""
        try:
            async for chunk in stream:
                if isinstance(chunk, dict):
                    self.add(chunk)
        except httpx2.HTTPError as exc:
            # The connection broke mid-answer: as retryable as one that broke before it.
            message = f"{self._label} stream broke: {type(exc).__name__}: {exc}"
            raise LLMError(message, retryable=True) from exc
        finally:
            await stream.close()
        return self.completion()

    def add(self, chunk: dict[str, Any]) -> None:
        """One chunk, as JSON: building the SDK's typed chunk costs more than the rest of the
        request's handling, once per token."""
        self.id = chunk.get("id") or self.id
        self.model = chunk.get("model") or self.model
        self.created = chunk.get("created") or self.created
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in (chunk.get("choices") or ())[:1]:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                self.content.append(content)
                self._sink.delta(Delta("content", content))
            for key in _REASONING_KEYS:
                text = delta.get(key)
                if isinstance(text, str) and text:
                    self.reasoning.append(text)
                    self._sink.delta(Delta("reasoning", text))
                    break
            for call in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": []})
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["name"] += function["name"]
                if function.get("arguments"):
                    slot["arguments"].append(function["arguments"])
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and logprobs.get("content") is not None:
                self.logprobs = (self.logprobs or []) + list(logprobs["content"])
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]

    def completion(self) -> ChatCompletion:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": slot["id"],
                    "type": "function",
                    "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
                }
                for _, slot in sorted(self.calls.items())
            ]
        logprobs = {"content": self.logprobs, "refusal": None} if self.logprobs is not None else None
        return ChatCompletion.model_validate(
            {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": logprobs,
                        "finish_reason": self.finish_reason or ("tool_calls" if self.calls else "stop"),
                    }
                ],
                "usage": self.usage,
            }
        )
