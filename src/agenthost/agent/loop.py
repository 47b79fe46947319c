"""The ``letta_v1_agent`` loop: call the LLM, run the tools it asks for, repeat until it answers.

A plain-text answer ends the turn (``end_turn``); tool calls are executed and the loop continues; a
call to a client-side tool pauses the run for the client (``requires_approval``); ``max_steps`` bounds
it. Each step commits atomically (step row, messages, memory edits) through ``RunStore``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from agenthost.agent.builtin_tools import BUILTIN_TOOLS
from agenthost.agent.context import llm_messages
from agenthost.agent.control import RunControl, RunInterrupted
from agenthost.agent.messages import new_message, tool_return_body
from agenthost.agent.prompt import compile_system
from agenthost.agent.store import Committed, Ending, Rejected, RunStore, StartedRun, StepRecord
from agenthost.agent.tools import ToolFailed, run_builtin
from agenthost.db.rows import MessageRow
from agenthost.errors import AgentHostError
from agenthost.ids import new_id
from agenthost.llm.base import LLMError, LLMRequest, LLMResponse, LLMToolCall, ToolSpec
from agenthost.llm.providers import Providers

log = logging.getLogger(__name__)

SEND_MESSAGE_RESULT = "Sent message successfully."


class AgentLoop:
    def __init__(self, store: RunStore, providers: Providers, on_finished: Callable[[str], None]) -> None:
        self._store = store
        self._providers = providers
        self._on_finished = on_finished

    async def execute(self, run_id: str, control: RunControl) -> None:
        """Run one queued run to a terminal state. Never raises for run-level failures."""
        state = _RunState(time.monotonic_ns())
        started = await self._store.begin(run_id)
        if started is None:
            return
        if isinstance(started, Rejected):
            self._ended(run_id, started.committed)
            return
        try:
            committed = await self._steps(started, control, state)
            if isinstance(committed, str):
                await self._finish(run_id, state.ending(committed))
            else:
                self._ended(run_id, committed)
        except RunInterrupted as exc:
            if exc.reason == "cancelled":
                # The canceller already wrote the terminal status; this write is a no-op unless it raced.
                await self._finish(run_id, state.ending("cancelled"))
            else:
                error = "the server shut down while this run was in progress"
                await self._finish(run_id, state.ending("error", error))
        except LLMError as exc:
            await self._finish(run_id, state.ending("llm_api_error", str(exc)))
        except AgentHostError as exc:
            await self._finish(run_id, state.ending("error", exc.message))
        except Exception as exc:
            log.exception("run %s failed", run_id)
            await self._finish(run_id, state.ending("error", f"internal error: {type(exc).__name__}: {exc}"))

    async def _finish(self, run_id: str, ending: Ending) -> None:
        self._ended(run_id, await self._store.finish(run_id, ending))

    def _ended(self, run_id: str, committed: Committed | None) -> None:
        if committed is not None and committed.callback_pending:
            self._on_finished(run_id)

    async def _commit(
        self, run: StartedRun, step: StepRecord, rows: list[MessageRow], state: _RunState, **kwargs: Any
    ) -> Committed:
        """Commit a step; a step with a ``stop_reason`` ends the run in the same transaction."""
        ending = state.ending(step.stop_reason) if step.stop_reason is not None else None
        committed = await self._store.commit_step(
            run.run_id, run.agent.id, step, rows, run.blocks, ending=ending, **kwargs
        )
        if committed is None:
            raise RunInterrupted("cancelled")
        return committed

    async def _steps(self, run: StartedRun, control: RunControl, state: _RunState) -> Committed | str:
        """The steps; returns the final commit, or a stop reason still to be written (``max_steps``)."""
        request = run.request
        handle = request.get("override_model") or run.agent.model
        client, model = self._providers.resolve(handle)
        client_tools = {t["name"]: t for t in request.get("client_tools") or []}
        tools = [BUILTIN_TOOLS[n].spec() for n in run.agent.tool_names if n in BUILTIN_TOOLS]
        tools += [
            ToolSpec(
                t["name"],
                t.get("description") or "",
                t.get("parameters") or {"type": "object", "properties": {}},
            )
            for t in client_tools.values()
            if t["name"] not in BUILTIN_TOOLS
        ]
        send_tool = request.get("assistant_message_tool_name") or "send_message"
        history = llm_messages(run.history)
        thinking = str(request.get("enable_thinking", "True")).lower() not in ("false", "0", "no")

        if run.approved_calls:
            rows, results = await self._execute_calls(run, control, None, run.approved_calls)
            step = StepRecord(
                new_id("step"),
                model,
                handle,
                client.provider_name,
                client.endpoint,
                run.agent.context_window,
                stop_reason=None,
            )
            await self._commit(run, step, rows, state)
            history.extend(results)

        max_steps = int(request.get("max_steps") or 50)
        for _ in range(max_steps):
            control.check()
            system = request.get("override_system") or compile_system(
                run.agent.system, run.blocks, request.get("client_skills") or ()
            )
            llm_request = LLMRequest(
                model=model,
                messages=[{"role": "system", "content": system}, *history],
                tools=tools,
                max_tokens=run.agent.max_tokens,
                enable_thinking=thinking,
                return_logprobs=bool(request.get("return_logprobs")),
                top_logprobs=request.get("top_logprobs"),
            )
            step = StepRecord(
                new_id("step"), model, handle, client.provider_name, client.endpoint, run.agent.context_window
            )
            try:
                response = await control.interruptible(client.complete(llm_request))
            except LLMError as exc:
                step.status, step.stop_reason = "failed", "llm_api_error"
                step.error_type, step.error_data = (
                    "llm_api_error",
                    {"message": str(exc), "status_code": exc.status_code},
                )
                # The failed step is recorded; the run ends with llm_api_error in `execute`.
                await self._store.commit_step(run.run_id, run.agent.id, step, [], run.blocks)
                raise
            if state.ttft_ns is None:
                state.ttft_ns = time.monotonic_ns() - state.t0
            step.prompt_tokens, step.completion_tokens = response.prompt_tokens, response.completion_tokens
            step.total_tokens = response.total_tokens or response.prompt_tokens + response.completion_tokens
            step.cached_input_tokens, step.reasoning_tokens = (
                response.cached_input_tokens,
                response.reasoning_tokens,
            )

            rows, assistant = self._response_rows(run, step.step_id, response)
            history.append(assistant)
            if not response.tool_calls:
                step.stop_reason = "end_turn"
                return await self._commit(run, step, rows, state)

            client_calls = [c for c in response.tool_calls if c.name in client_tools]
            server_calls = [c for c in response.tool_calls if c.name not in client_tools]
            ended_by_send = any(c.name == send_tool and c.name not in BUILTIN_TOOLS for c in server_calls)
            call_dicts = [_call_dict(c) for c in server_calls]
            for call in call_dicts:
                rows.append(
                    new_message(
                        run.run_id,
                        run.agent.id,
                        "tool_call_message",
                        {"tool_call": call, "tool_calls": [call]},
                        step_id=step.step_id,
                        otid=new_id("otid"),
                    )
                )
            pending_id = None
            if client_calls:
                calls = [_call_dict(c) for c in client_calls]
                approval = new_message(
                    run.run_id,
                    run.agent.id,
                    "approval_request_message",
                    {
                        "tool_call": calls[0],
                        "tool_calls": calls,
                        "_client_tool_names": [c["name"] for c in calls],
                    },
                    step_id=step.step_id,
                    otid=new_id("otid"),
                )
                # Before the tool returns: all calls of one LLM response stay together in the context.
                rows.append(approval)
                pending_id = approval.id
                step.stop_reason = "requires_approval"
            elif ended_by_send:
                step.stop_reason = "end_turn"
            exec_rows, results = await self._execute_calls(run, control, step.step_id, call_dicts, send_tool)
            rows.extend(exec_rows)
            history.extend(results)
            committed = await self._commit(run, step, rows, state, pending_approval_id=pending_id)
            if committed.ended:
                return committed
        return "max_steps"

    def _response_rows(
        self, run: StartedRun, step_id: str, response: LLMResponse
    ) -> tuple[list[MessageRow], dict[str, Any]]:
        rows: list[MessageRow] = []
        if response.reasoning:
            rows.append(
                new_message(
                    run.run_id,
                    run.agent.id,
                    "reasoning_message",
                    {"reasoning": response.reasoning, "source": "reasoner_model", "signature": None},
                    step_id=step_id,
                    otid=new_id("otid"),
                )
            )
        if response.content:
            rows.append(
                new_message(
                    run.run_id,
                    run.agent.id,
                    "assistant_message",
                    {"content": response.content},
                    step_id=step_id,
                    otid=new_id("otid"),
                )
            )
        assistant: dict[str, Any] = {"role": "assistant", "content": response.content}
        if response.tool_calls:
            assistant["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in response.tool_calls
            ]
        return rows, assistant

    async def _execute_calls(
        self,
        run: StartedRun,
        control: RunControl,
        step_id: str | None,
        calls: list[dict[str, Any]],
        send_tool: str | None = None,
    ) -> tuple[list[MessageRow], list[dict[str, Any]]]:
        rows: list[MessageRow] = []
        results: list[dict[str, Any]] = []
        for call in calls:
            status, text = await self._execute_one(run, control, call, send_tool)
            rows.append(
                new_message(
                    run.run_id,
                    run.agent.id,
                    "tool_return_message",
                    tool_return_body(call["tool_call_id"], call["name"], status, text),
                    step_id=step_id,
                    is_err=status == "error",
                    otid=new_id("otid"),
                )
            )
            results.append({"role": "tool", "tool_call_id": call["tool_call_id"], "content": text})
        return rows, results

    async def _execute_one(
        self, run: StartedRun, control: RunControl, call: dict[str, Any], send_tool: str | None
    ) -> tuple[str, str]:
        name = call["name"]
        try:
            args = json.loads(call["arguments"] or "{}")
        except json.JSONDecodeError as exc:
            return (
                "error",
                f"the arguments of '{name}' are not valid JSON ({exc.msg}); call it again with a JSON object",
            )
        if not isinstance(args, dict):
            return "error", f"the arguments of '{name}' must be a JSON object"
        if name in BUILTIN_TOOLS and name in run.agent.tool_names:

            async def search(query: str, roles: list[str] | None, limit: int) -> list[dict[str, Any]]:
                return await self._store.search_messages(run.agent.id, query, roles, limit)

            try:
                return "success", await control.interruptible(run_builtin(name, args, run.blocks, search))
            except ToolFailed as exc:
                return "error", str(exc)
        if name == send_tool:
            return "success", SEND_MESSAGE_RESULT
        available = sorted([n for n in run.agent.tool_names if n in BUILTIN_TOOLS])
        return "error", f"tool '{name}' does not exist; available tools: {available}"


class _RunState:
    __slots__ = ("t0", "ttft_ns")

    def __init__(self, t0: int) -> None:
        self.t0 = t0
        self.ttft_ns: int | None = None

    def ending(self, stop_reason: str, error: str | None = None) -> Ending:
        return Ending(stop_reason, error, self.ttft_ns, time.monotonic_ns() - self.t0)


def _call_dict(call: LLMToolCall) -> dict[str, Any]:
    return {"name": call.name, "arguments": call.arguments, "tool_call_id": call.id}
