"""A run's timings and the token data it returns (``return_logprobs``, ``return_token_ids``)."""

from __future__ import annotations

import time
from typing import Any

from agenthost.agent.persistence import Ending
from agenthost.llm.base import LLMResponse


class RunState:
    """Timings, and with ``return_logprobs``/``return_token_ids`` the token data the run returns."""

    __slots__ = ("attempt", "logprobs", "t0", "ttft_ns", "turns", "want_logprobs", "want_turns")

    def __init__(self, t0: int) -> None:
        self.t0 = t0
        self.ttft_ns: int | None = None
        self.attempt: int | None = None
        self.want_logprobs = False
        self.want_turns = False
        self.logprobs: dict[str, Any] | None = None
        self.turns: list[dict[str, Any]] = []

    def record_generation(self, response: LLMResponse) -> None:
        if self.want_logprobs:
            self.logprobs = response.logprobs
        if self.want_turns:
            self.turns.append(
                {
                    "role": "assistant",
                    "content": response.content,
                    "output_ids": response.output_ids,
                    "output_token_logprobs": response.output_token_logprobs,
                }
            )

    def record_tool_results(self, calls: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
        """Tool turns (not trainable: the client tokenizes them with loss mask 0), in call order."""
        if not self.want_turns:
            return
        names = {c["tool_call_id"]: c["name"] for c in calls}
        for result in results:
            name = names.get(result["tool_call_id"])
            if name is not None:
                self.turns.append({"role": "tool", "content": result["content"], "tool_name": name})

    def ending(self, stop_reason: str, error: str | None = None) -> Ending:
        result: dict[str, Any] = {}
        if self.want_logprobs:
            result["logprobs"] = self.logprobs
        if self.want_turns:
            result["turns"] = self.turns
        return Ending(
            stop_reason, error, self.ttft_ns, time.monotonic_ns() - self.t0, result or None, self.attempt
        )
