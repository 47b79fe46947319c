"""A streamed chat completion, gathered back into the whole ``ChatCompletion`` it stands for.

Each chunk's text and reasoning go to the run's delta sink as they arrive; tool calls (assembled from
their argument fragments by ``index``), the finish reason, logprobs and usage (the last chunk, with
``stream_options.include_usage``) are kept for the whole response.
"""

from __future__ import annotations

from typing import Any

import httpx2
from openai import AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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

    async def gather(self, stream: AsyncStream[ChatCompletionChunk]) -> ChatCompletion:
        """Read the whole stream (closing it however this ends) and return the completion."""
        try:
            async for chunk in stream:
                self.add(chunk)
        except httpx2.HTTPError as exc:
            # The connection broke mid-answer: as retryable as one that broke before it.
            message = f"{self._label} stream broke: {type(exc).__name__}: {exc}"
            raise LLMError(message, retryable=True) from exc
        finally:
            await stream.close()
        return self.completion()

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.id, self.model, self.created = chunk.id, chunk.model, chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage.model_dump()
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta.content:
                self.content.append(delta.content)
                self._sink.delta(Delta("content", delta.content))
            extra = delta.model_extra or {}
            for key in _REASONING_KEYS:
                text = extra.get(key)
                if isinstance(text, str) and text:
                    self.reasoning.append(text)
                    self._sink.delta(Delta("reasoning", text))
                    break
            for call in delta.tool_calls or ():
                slot = self.calls.setdefault(call.index, {"id": "", "name": "", "arguments": []})
                if call.id:
                    slot["id"] = call.id
                if call.function is not None:
                    if call.function.name:
                        slot["name"] += call.function.name
                    if call.function.arguments:
                        slot["arguments"].append(call.function.arguments)
            if choice.logprobs is not None and choice.logprobs.content is not None:
                self.logprobs = (self.logprobs or []) + [t.model_dump() for t in choice.logprobs.content]
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason

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
