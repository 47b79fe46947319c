"""The ``letta_v1_agent`` loop: call the LLM, run the tools it asks for, repeat until it answers.

A plain-text answer ends the turn (``end_turn``); tool calls are executed and the loop continues; a
call to a client-side tool pauses the run for the client (``requires_approval``); ``max_steps`` bounds
it. Each step commits atomically (step record, messages, memory edits) through the loop's persistence
(``agent/persistence.py``), which fences every write on the run's ownership.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agenthost.agent.compaction import (
    KEEP_FRACTION,
    CompactionOptions,
    Compactor,
    reserve_tokens,
)
from agenthost.agent.context import llm_messages, reasoning_dict, summary_message
from agenthost.agent.control import RunControl, RunInterrupted
from agenthost.agent.messages import new_message
from agenthost.agent.persistence import (
    Committed,
    Ending,
    Rejected,
    RunPersistence,
    StartedRun,
    StepRecord,
    StoredMessage,
)
from agenthost.agent.prompt import compile_system
from agenthost.agent.run_state import RunState
from agenthost.agent.tool_calls import ToolCalls, call_message
from agenthost.errors import AgentHostError
from agenthost.ids import new_id
from agenthost.llm.base import LLMClient, LLMError, LLMRequest, LLMResponse, LLMToolCall
from agenthost.llm.providers import Providers
from agenthost.llm.tokens import estimate_tokens
from agenthost.schemas.letta_messages import (
    ApprovalRequestMessageBody,
    AssistantMessageBody,
    HiddenReasoningMessageBody,
    MessageBody,
    ReasoningMessageBody,
    ToolCall,
)
from agenthost.tools.executor import ToolExecutor
from agenthost.tools.toolset import Toolset, required_reminder

log = logging.getLogger(__name__)

# Below this share of the usable window (by the local estimate) the prompt is not counted exactly.
EXACT_COUNT_FROM = 0.75
MAX_COMPACTIONS_PER_STEP = 3
SHUTDOWN_REASON = "the server shut down while this run was in progress"


class AgentLoop:
    """Executes runs: ``execute`` takes one queued run to a terminal state."""

    def __init__(
        self,
        store: RunPersistence,
        providers: Providers,
        executor: ToolExecutor,
        on_finished: Callable[[str], None],
        *,
        thinking_budget_tokens: int | None = None,
    ) -> None:
        self._thinking_budget = thinking_budget_tokens
        self._compactor = Compactor(store)
        self._store = store
        self._providers = providers
        self._tool_calls = ToolCalls(store, executor)
        self._on_finished = on_finished

    async def execute(self, run_id: str, control: RunControl) -> None:
        """Run one queued run to a terminal state. Never raises for run-level failures."""
        state = RunState(time.monotonic_ns())
        started = await self._store.begin(run_id)
        if started is None:
            return
        if isinstance(started, Rejected):
            self._ended(run_id, started.committed)
            return
        state.attempt = started.handle.attempt
        if started.request.token_events:
            started.token_log = self._store.token_log(started.handle)
        committed: Committed | str
        try:
            if started.request.compaction is not None:
                committed = await self.compact_only(started, control)
            else:
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
                # Stopped at shutdown: re-queued if it has done nothing yet, as after a crash.
                self._ended(run_id, await self._store.hand_back(run_id, SHUTDOWN_REASON))
        except LLMError as exc:
            await self._finish(run_id, state.ending("llm_api_error", str(exc)))
        except AgentHostError as exc:
            await self._finish(run_id, state.ending("error", exc.message))
        except Exception as exc:
            log.exception("run %s failed", run_id)
            await self._finish(run_id, state.ending("error", f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            if started.token_log is not None:
                await started.token_log.close()

    async def _finish(self, run_id: str, ending: Ending) -> None:
        self._ended(run_id, await self._store.finish(run_id, ending))

    def _ended(self, run_id: str, committed: Committed | None) -> None:
        if committed is not None and committed.callback_pending:
            self._on_finished(run_id)

    async def _commit(
        self,
        run: StartedRun,
        step: StepRecord,
        messages: list[StoredMessage],
        state: RunState,
        *,
        pending_approval_id: str | None = None,
    ) -> Committed:
        """Commit a step; a step with a ``stop_reason`` ends the run in the same transaction."""
        ending = state.ending(step.stop_reason) if step.stop_reason is not None else None
        committed = await self._store.commit_step(
            run.handle,
            step,
            messages,
            run.blocks,
            pending_approval_id=pending_approval_id,
            ending=ending,
            token_log=run.token_log,
        )
        if committed is None:
            raise RunInterrupted("cancelled")
        return committed

    async def _steps(self, run: StartedRun, control: RunControl, state: RunState) -> Committed | str:
        """The steps; returns the final commit, or a stop reason still to be written (``max_steps``)."""
        request = run.request
        state.want_logprobs = request.return_logprobs
        state.want_turns = request.return_token_ids
        handle = request.override_model or run.agent.model
        client, model = self._providers.resolve(handle)
        agent = run.agent
        turn = Toolset(
            agent.id,
            agent.tools,
            agent.tool_rules,
            run.blocks,
            agent.env,
            client_tools=request.client_tools,
            send_tool=request.assistant_message_tool_name,
        )
        thinking = request.thinking()
        history = llm_messages(run.history, run.images)

        def new_step() -> StepRecord:
            return StepRecord(
                new_id("step"), model, handle, client.provider_name, client.endpoint, run.agent.context_window
            )

        if run.approved_calls:
            step = new_step()
            rows, results, executed = await self._tool_calls.run(
                run, control, turn, None, run.approved_calls, approved=True
            )
            if any(turn.solver.is_terminal(name) for name in executed):
                step.stop_reason = "tool_rule"
            state.record_tool_results(run.approved_calls, results)
            committed = await self._commit(run, step, rows, state)
            if committed.ended:
                return committed
            history.extend(results)

        for _ in range(request.max_steps):
            control.check()
            names = list(turn.specs)
            allowed = turn.solver.allowed_tools(names)
            must_call = turn.solver.must_call_tool()
            if names and not allowed and must_call:
                # The rules leave nothing callable, yet demand a call: the rules end the run.
                return "tool_rule"
            system = request.override_system or compile_system(
                run.agent.system, run.blocks, request.client_skills or ()
            )
            llm_request = LLMRequest(
                model=model,
                messages=self._prompt(run, system, history),
                tools=[turn.specs[n] for n in allowed],
                tool_choice="required" if must_call and allowed else None,
                max_tokens=run.agent.max_tokens,
                enable_thinking=thinking,
                reasoning_budget_tokens=self._thinking_budget,
                return_logprobs=state.want_logprobs,
                top_logprobs=request.top_logprobs,
                return_token_ids=state.want_turns,
            )
            overflow = await self._fit_context(run, control, client, model, llm_request, system, history)
            if overflow is not None:
                return overflow
            step = new_step()
            if run.token_log is not None:
                run.token_log.begin_call(step.step_id)
            try:
                response = await control.interruptible(client.complete(llm_request, run.token_log))
            except LLMError as exc:
                step.status, step.stop_reason = "failed", "llm_api_error"
                step.error_type, step.error_data = (
                    "llm_api_error",
                    {"message": str(exc), "status_code": exc.status_code},
                )
                # The failed step is recorded; the run ends with llm_api_error in `execute`.
                await self._store.commit_step(run.handle, step, [], run.blocks, token_log=run.token_log)
                raise
            if state.ttft_ns is None:
                state.ttft_ns = time.monotonic_ns() - state.t0
            state.record_generation(response)
            step.prompt_tokens, step.completion_tokens = response.prompt_tokens, response.completion_tokens
            step.total_tokens = response.total_tokens or response.prompt_tokens + response.completion_tokens
            step.cached_input_tokens, step.reasoning_tokens = (
                response.cached_input_tokens,
                response.reasoning_tokens,
            )

            rows, assistant = self._response_messages(run, step.step_id, response)
            history.append(assistant)
            if not response.tool_calls:
                missing = turn.solver.missing_before_exit()
                if not missing:
                    step.stop_reason = "end_turn"
                    return await self._commit(run, step, rows, state)
                # A tool the rules require before the turn may end has not been called yet.
                await self._commit(run, step, rows, state)
                history.append({"role": "user", "content": required_reminder(missing)})
                continue

            committed = await self._tool_step(run, control, turn, step, response, rows, history, state)
            if committed.ended:
                return committed
        return "max_steps"

    @staticmethod
    def _prompt(run: StartedRun, system: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        head = [{"role": "system", "content": system}]
        if run.agent.context_summary:
            head.append(summary_message(run.agent.context_summary))
        return [*head, *history]

    async def _fit_context(
        self,
        run: StartedRun,
        control: RunControl,
        client: LLMClient,
        model: str,
        llm_request: LLMRequest,
        system: str,
        history: list[dict[str, Any]],
    ) -> str | None:
        """Compact when the prompt would overflow the context window; ``llm_request`` is updated in
        place. Returns a stop reason when the run cannot go on."""
        window = run.agent.context_window
        limit = window - reserve_tokens(window, run.agent.max_tokens)
        # The local estimate first: an exact count can cost a provider round trip (Anthropic's
        # count_tokens), worth paying only when the prompt comes near the limit.
        if estimate_tokens(llm_request) <= limit * EXACT_COUNT_FROM:
            return None
        tokens = await control.interruptible(client.count_tokens(llm_request))
        if tokens <= limit:
            return None
        alone = replace(llm_request, messages=[{"role": "system", "content": system}])
        if await control.interruptible(client.count_tokens(alone)) > limit:
            return "context_window_overflow_in_system_prompt"
        # Each compaction keeps the newest messages that fit a share of the window by the estimate;
        # a provider that counts more tokens than estimated may need a second pass.
        for _ in range(MAX_COMPACTIONS_PER_STEP):
            compaction = await control.interruptible(
                self._compactor.compact(
                    run.handle,
                    client=client,
                    model=model,
                    context_window=window,
                    trigger="context_window_exceeded",
                    options=CompactionOptions(),
                    tokens_before=tokens,
                    token_log=run.token_log,
                )
            )
            if compaction is None:
                break
            # The kept messages are the newest rows of the context: rebuild the prompt from them.
            context = await self._store.context(run.handle.thread)
            run.agent.context_summary = context.summary
            history[:] = llm_messages(context.messages, run.images)
            llm_request.messages = self._prompt(run, system, history)
            tokens = await control.interruptible(client.count_tokens(llm_request))
            if tokens <= limit:
                return None
        raise AgentHostError(
            f"the prompt needs {tokens} tokens, more than the {limit} this agent's context window "
            "leaves, and compacting older messages did not make it fit"
        )

    async def compact_only(self, run: StartedRun, control: RunControl) -> str:
        """A forced compaction (``agents.messages.compact``): no LLM turn, only the summary."""
        settings = run.request.compaction
        assert settings is not None
        client, model = self._providers.resolve(settings.model or run.agent.model)
        await control.interruptible(
            self._compactor.compact(
                run.handle,
                client=client,
                model=model,
                context_window=run.agent.context_window,
                trigger="manual",
                token_log=run.token_log,
                options=CompactionOptions(
                    mode=settings.mode or "sliding_window",
                    keep_fraction=settings.sliding_window_percentage or KEEP_FRACTION,
                    prompt=settings.prompt,
                    clip_chars=settings.clip_chars,
                ),
            )
        )
        return "end_turn"

    async def _tool_step(
        self,
        run: StartedRun,
        control: RunControl,
        turn: Toolset,
        step: StepRecord,
        response: LLMResponse,
        rows: list[StoredMessage],
        history: list[dict[str, Any]],
        state: RunState,
    ) -> Committed:
        """Run the response's calls in order (or refuse them, or hold them for a human), then commit."""
        calls = [_call_dict(c) for c in response.tool_calls]
        held = [c for c in calls if turn.needs_human(c["name"])]
        ready = [c for c in calls if not turn.needs_human(c["name"])]
        exec_rows, results, executed = await self._tool_calls.run(run, control, turn, step.step_id, ready)
        # Call rows after execution: a run-first prefill may have changed a call's arguments.
        rows.extend(call_message(run, step.step_id, call) for call in ready)
        pending_id = None
        if held:
            client_names = [c["name"] for c in held if c["name"] not in turn.server_tools]
            approval = new_message(
                run.run_id,
                run.agent.id,
                ApprovalRequestMessageBody.of([ToolCall.model_validate(c) for c in held]),
                step_id=step.step_id,
                otid=new_id("otid"),
                client_tool_names=client_names,
            )
            # Before the tool returns: all calls of one LLM response stay together in the context.
            rows.append(approval)
            pending_id = approval.id
        rows.extend(exec_rows)
        history.extend(results)
        state.record_tool_results(ready, results)
        solver = turn.solver
        ended_by_send = turn.send_tool in executed and turn.send_tool not in turn.server_tools
        if held:
            step.stop_reason = "requires_approval"
        elif any(solver.is_terminal(name) for name in executed):
            step.stop_reason = "tool_rule"
        elif ended_by_send and not solver.is_continue(turn.send_tool) and not solver.missing_before_exit():
            step.stop_reason = "end_turn"
        return await self._commit(run, step, rows, state, pending_approval_id=pending_id)

    def _response_messages(
        self, run: StartedRun, step_id: str, response: LLMResponse
    ) -> tuple[list[StoredMessage], dict[str, Any]]:
        """The response's messages (reasoning, then text) and its turn in the LLM's chat format."""
        rows: list[StoredMessage] = []

        def message(body: MessageBody, streamed_as: tuple[str, int] | None) -> StoredMessage:
            # A message streamed as deltas keeps the id (and otid) its deltas carried.
            ids = run.token_log.message_ids(*streamed_as) if run.token_log and streamed_as else None
            message_id, otid = ids if ids is not None else (None, new_id("otid"))
            return new_message(
                run.run_id, run.agent.id, body, step_id=step_id, otid=otid, message_id=message_id
            )

        for index, piece in enumerate(response.reasoning):
            if piece.redacted is not None:
                rows.append(
                    message(
                        HiddenReasoningMessageBody(state="redacted", hidden_reasoning=piece.redacted), None
                    )
                )
            else:
                body = ReasoningMessageBody(
                    reasoning=piece.text or "", source="reasoner_model", signature=piece.signature
                )
                rows.append(message(body, ("reasoning", index)))
        if response.content:
            rows.append(message(AssistantMessageBody(content=response.content), ("content", 0)))
        assistant: dict[str, Any] = {"role": "assistant", "content": response.content}
        if response.reasoning:
            assistant["reasoning"] = [reasoning_dict(piece) for piece in response.reasoning]
        if response.tool_calls:
            assistant["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in response.tool_calls
            ]
        return rows, assistant


def _call_dict(call: LLMToolCall) -> dict[str, Any]:
    return {"name": call.name, "arguments": call.arguments, "tool_call_id": call.id}
