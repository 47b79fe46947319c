"""Executing the tool calls of one LLM response: in order, each checked against the tool rules just
before it runs; a stretch of parallel-safe custom tools at once.

Before the first server-side tool with effects outside the step's transaction (custom tools, archival
inserts), the run records ``effects_started``: from then on a run whose worker dies is failed, not
re-queued (``db/run_lifecycle.py``'s hand-back), so such a tool never runs twice for one message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agenthost.agent.control import RunControl, RunInterrupted
from agenthost.agent.messages import new_message
from agenthost.agent.persistence import RunPersistence, StartedRun, StoredMessage
from agenthost.ids import new_id
from agenthost.schemas.letta_messages import ToolCall, ToolCallMessageBody, ToolReturnMessageBody
from agenthost.tools.executor import AgentTool, ToolExecutor, ToolOutcome
from agenthost.tools.toolset import Toolset, batches

SEND_MESSAGE_RESULT = "Sent message successfully."


class ToolCalls:
    """The loop's execution of one LLM response's tool calls (``tools/`` says what each tool does)."""

    def __init__(self, store: RunPersistence, executor: ToolExecutor) -> None:
        self._store = store
        self._executor = executor

    async def run(
        self,
        run: StartedRun,
        control: RunControl,
        turn: Toolset,
        step_id: str | None,
        calls: list[dict[str, Any]],
        *,
        approved: bool = False,
    ) -> tuple[list[StoredMessage], list[dict[str, Any]], list[str]]:
        """Run the calls in order, each checked against the tool rules just before it runs and
        recorded just after; a stretch of parallel-safe custom tools is checked, then run at once.

        Returns the tool-return rows and LLM messages in call order, and the names that ran. A call
        the rules refuse does not run: its return is the refusal. ``approved`` calls were let through
        by a human after the rules had already allowed them.
        """
        rows: list[StoredMessage] = []
        results: list[dict[str, Any]] = []
        executed: list[str] = []
        for batch in batches(calls, turn):
            refusals = {c["tool_call_id"]: v for c in batch if (v := None if approved else turn.check(c))}
            runnable = [c for c in batch if c["tool_call_id"] not in refusals]
            outcomes: list[ToolOutcome] = []
            if len(runnable) > 1:
                outcomes = list(await asyncio.gather(*(self._one(run, control, turn, c) for c in runnable)))
            elif runnable:
                outcomes = [await self._one(run, control, turn, runnable[0])]
            by_id = {c["tool_call_id"]: o for c, o in zip(runnable, outcomes, strict=True)}
            for call in batch:
                call_id = call["tool_call_id"]
                if call_id in refusals:
                    outcome = ToolOutcome("error", refusals[call_id])
                else:
                    outcome = by_id[call_id]
                    executed.append(call["name"])
                    violation = turn.record(call["name"], outcome)
                    if violation is not None:
                        outcome = ToolOutcome(
                            "error", f"{outcome.text}\n{violation}", outcome.stdout, outcome.stderr
                        )
                rows.append(_return_row(run, step_id, call, outcome))
                results.append({"role": "tool", "tool_call_id": call_id, "content": outcome.text})
        return rows, results, executed

    async def _one(
        self, run: StartedRun, control: RunControl, turn: Toolset, call: dict[str, Any]
    ) -> ToolOutcome:
        name = call["name"]
        try:
            args = json.loads(call["arguments"] or "{}")
        except json.JSONDecodeError as exc:
            return ToolOutcome(
                "error",
                f"the arguments of '{name}' are not valid JSON ({exc.msg}); call it again with a JSON object",
            )
        if not isinstance(args, dict):
            return ToolOutcome("error", f"the arguments of '{name}' must be a JSON object")
        tool = turn.server_tools.get(name)
        if tool is not None:
            if _has_effects(tool) and not run.effects_started:
                # Before the first effect: a worker dying past this point cannot hand the run back.
                if not await self._store.effects_starting(run.handle):
                    raise RunInterrupted("cancelled")
                run.effects_started = True
            return await control.interruptible(self._executor.execute(tool, args, turn.context))
        if name == turn.send_tool:
            return ToolOutcome("success", SEND_MESSAGE_RESULT)
        return ToolOutcome("error", f"tool '{name}' does not exist; available tools: {sorted(turn.specs)}")


def call_message(run: StartedRun, step_id: str | None, call: dict[str, Any]) -> StoredMessage:
    return new_message(
        run.run_id,
        run.agent.id,
        ToolCallMessageBody.of(ToolCall.model_validate(call)),
        step_id=step_id,
        otid=new_id("otid"),
    )


def _return_row(
    run: StartedRun, step_id: str | None, call: dict[str, Any], outcome: ToolOutcome
) -> StoredMessage:
    return new_message(
        run.run_id,
        run.agent.id,
        ToolReturnMessageBody.of(
            call["tool_call_id"],
            call["name"],
            outcome.status,
            outcome.text,
            outcome.stdout,
            outcome.stderr,
        ),
        step_id=step_id,
        is_err=outcome.status == "error",
        otid=new_id("otid"),
    )


# Built-in tools whose effects outlive the step's transaction (the memory tools' edits commit with it).
_EFFECTFUL_BUILTINS = frozenset({"archival_memory_insert"})


def _has_effects(tool: AgentTool) -> bool:
    return tool.is_custom or tool.name in _EFFECTFUL_BUILTINS
