"""A scripted LLM client: answers from a list given in advance, and records what it was asked.

The agent loop's decisions (tool rules, approvals, compaction, fencing) are tested with it and the
in-memory run store (``db/in_memory.py``) as plain async code: no HTTP, no SQL. A step of the script
is a whole response, an error to raise, or a callable that sees the request and returns either (or
waits first: a test can hold a call open on an event and act meanwhile).
"""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from agenthost.llm.base import DeltaSink, LLMClient, LLMRequest, LLMResponse, LLMToolCall

Reply = LLMResponse | Exception | Callable[[LLMRequest], "LLMResponse | Awaitable[LLMResponse]"]


def text(content: str, *, prompt_tokens: int = 10, completion_tokens: int = 5) -> LLMResponse:
    """A plain answer."""
    return LLMResponse(content, [], "stop", "scripted", prompt_tokens, completion_tokens)


def tool_calls(*calls: tuple[str, dict[str, Any]], content: str | None = None) -> LLMResponse:
    """An answer that calls tools: ``(name, arguments)`` each, with ids ``call-1``, ``call-2``, ..."""
    made = [LLMToolCall(f"call-{i}", name, json.dumps(args)) for i, (name, args) in enumerate(calls, 1)]
    return LLMResponse(content, made, "tool_calls", "scripted", 10, 5)


class ScriptedLLM(LLMClient):
    """Replies from a script, in order; past its end, ``default`` (an error when there is none)."""

    provider_name = "scripted"
    endpoint_type = "scripted"
    endpoint = None

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        models: Iterable[str] = ("scripted",),
        count: Callable[[LLMRequest], int] | None = None,
    ) -> None:
        self._replies: deque[Reply] = deque(replies)
        self._default = default
        self._count = count
        self.configured_models = list(models)
        self.requests: list[LLMRequest] = []

    def script(self, *replies: Reply) -> None:
        """Append replies to the script."""
        self._replies.extend(replies)

    @property
    def remaining(self) -> int:
        return len(self._replies)

    async def complete(self, request: LLMRequest, sink: DeltaSink | None = None) -> LLMResponse:
        self.requests.append(request)
        if self._replies:
            reply = self._replies.popleft()
        elif self._default is not None:
            reply = self._default
        else:
            raise AssertionError(f"the script has no reply left for call {len(self.requests)}")
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, LLMResponse):
            return reply
        answer = reply(request)
        if inspect.isawaitable(answer):
            answer = await answer
        assert isinstance(answer, LLMResponse)
        return answer

    async def count_tokens(self, request: LLMRequest) -> int:
        if self._count is not None:
            return self._count(request)
        return await super().count_tokens(request)

    async def list_models(self) -> list[str]:
        return list(self.configured_models)
