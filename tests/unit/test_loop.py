"""The agent loop's decisions, as plain async tests: a scripted LLM and the in-memory run store.

No HTTP, no SQL: what the loop decides (tool rules, approvals, compaction, how a step ends, what a
fenced-out execution may still write) is read from what it wrote to the store and asked the LLM.
The HTTP + SQL suites (``tests/api``) keep covering the same paths for wire fidelity.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.unit.loop_support import (
    MODEL,
    FakeRunner,
    Harness,
    builtin,
    custom,
    request_of,
    tool_names,
    user_texts,
)

from agenthost.agent.control import RunControl
from agenthost.agent.run_request import RunRequest
from agenthost.db.run_lifecycle import RunStatus
from agenthost.llm.base import LLMError, LLMRequest, LLMResponse, Reasoning
from agenthost.llm.scripted import ScriptedLLM, text, tool_calls
from agenthost.schemas.compaction import CompactionSettings

# -- how a run ends ----------------------------------------------------------------------------


async def test_a_plain_answer_ends_the_turn() -> None:
    h = Harness(ScriptedLLM([text("hello")]))
    agent = h.store.add_agent(MODEL)
    run_id = await h.run(agent, input="hi")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert h.kinds(run_id) == ["user_message", "assistant_message"]
    assert len(h.store.runs[run_id].steps) == 1
    assert h.store.agents[agent].last_stop_reason == "end_turn"


async def test_tool_calls_run_and_the_loop_goes_on_until_an_answer() -> None:
    call = tool_calls(("memory_insert", {"label": "human", "new_str": "likes tea"}))
    h = Harness(ScriptedLLM([call, text("noted")]))
    agent = h.store.add_agent(MODEL, tools=[builtin("memory_insert")], blocks=[("human", "Name: Bob")])
    run_id = await h.run(agent, input="I like tea")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert h.kinds(run_id) == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    # The edit committed with its step, and the second call saw it in the system prompt.
    (block,) = h.store.blocks.values()
    assert block.value == "Name: Bob\nlikes tea"
    assert "likes tea" in h.llm.requests[1].messages[0]["content"]
    assert h.llm.requests[1].messages[-1] == {
        "role": "tool",
        "tool_call_id": "call-1",
        "content": "Inserted into block 'human'.",
    }


async def test_max_steps_bounds_the_run() -> None:
    call = tool_calls(("conversation_search", {"query": "x"}))
    h = Harness(ScriptedLLM(default=call))
    agent = h.store.add_agent(MODEL, tools=[builtin("conversation_search")])
    run_id = await h.run(agent, input="loop", max_steps=3)
    assert h.outcome(run_id) == ("completed", "max_steps")
    assert len(h.llm.requests) == 3


async def test_an_llm_error_fails_the_run_and_records_the_failed_step() -> None:
    h = Harness(ScriptedLLM([LLMError("upstream is down", status_code=503)]))
    agent = h.store.add_agent(MODEL)
    run_id = await h.run(agent, input="hi")
    assert h.outcome(run_id) == ("failed", "llm_api_error")
    (step,) = h.store.runs[run_id].steps
    assert (step.status, step.error_type) == ("failed", "llm_api_error")
    assert h.store.runs[run_id].error == "upstream is down"


async def test_an_unknown_tool_is_answered_with_an_error_and_the_run_goes_on() -> None:
    h = Harness(ScriptedLLM([tool_calls(("no_such_tool", {})), text("sorry")]))
    agent = h.store.add_agent(MODEL)
    run_id = await h.run(agent, input="hi")
    assert h.outcome(run_id) == ("completed", "end_turn")
    returns = [m for m in h.store.messages if m.message_type == "tool_return_message"]
    assert returns[0].is_err and "does not exist" in returns[0].body["tool_return"]


async def test_reasoning_and_text_are_stored_in_order() -> None:
    answer = LLMResponse("it is 4", [], "stop", "m", 1, 1, reasoning=[Reasoning(text="2+2", signature="s")])
    h = Harness(ScriptedLLM([answer]))
    agent = h.store.add_agent(MODEL)
    run_id = await h.run(agent, input="2+2?")
    assert h.kinds(run_id) == ["user_message", "reasoning_message", "assistant_message"]


# -- tool rules --------------------------------------------------------------------------------


async def test_run_first_forces_the_first_call() -> None:
    tools = [builtin("conversation_search"), builtin("memory_insert")]
    rules = [{"type": "run_first", "tool_name": "conversation_search"}]
    first = tool_calls(("conversation_search", {"query": "tea"}))
    h = Harness(ScriptedLLM([first, text("done")]))
    agent = h.store.add_agent(MODEL, tools=tools, tool_rules=rules, blocks=[("human", "")])
    await h.run(agent, input="hi")
    assert tool_names(h.llm.requests[0]) == ["conversation_search"]
    assert h.llm.requests[0].tool_choice == "required"
    assert sorted(tool_names(h.llm.requests[1])) == ["conversation_search", "memory_insert"]
    assert h.llm.requests[1].tool_choice is None


async def test_a_terminal_tool_ends_the_run_after_it_runs() -> None:
    rules = [{"type": "exit_loop", "tool_name": "memory_insert"}]
    call = tool_calls(("memory_insert", {"label": "human", "new_str": "bye"}))
    h = Harness(ScriptedLLM([call]))
    agent = h.store.add_agent(
        MODEL, tools=[builtin("memory_insert")], tool_rules=rules, blocks=[("human", "")]
    )
    run_id = await h.run(agent, input="hi")
    assert h.outcome(run_id) == ("completed", "tool_rule")
    assert len(h.llm.requests) == 1
    assert next(iter(h.store.blocks.values())).value == "bye"


async def test_a_required_tool_must_run_before_the_turn_may_end() -> None:
    rules = [{"type": "required_before_exit", "tool_name": "conversation_search"}]
    search = tool_calls(("conversation_search", {"query": "q"}))
    h = Harness(ScriptedLLM([text("early answer"), search, text("now done")]))
    agent = h.store.add_agent(MODEL, tools=[builtin("conversation_search")], tool_rules=rules)
    run_id = await h.run(agent, input="hi")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert len(h.llm.requests) == 3
    # The second call was told why the turn could not end.
    assert "conversation_search" in user_texts(h.llm.requests[1])[-1]


async def test_a_call_the_rules_refuse_does_not_run() -> None:
    rules = [{"type": "max_count_per_step", "tool_name": "ping", "max_count_limit": 1}]
    runner = FakeRunner({"ping": lambda: "pong"})
    calls = tool_calls(("ping", {}), ("ping", {}))
    h = Harness(ScriptedLLM([calls, text("ok")]), runner)
    agent = h.store.add_agent(MODEL, tools=[custom("ping")], tool_rules=rules)
    run_id = await h.run(agent, input="hi")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert len(runner.calls) == 1
    first, second = [m for m in h.store.messages if m.message_type == "tool_return_message"]
    assert (first.is_err, second.is_err) == (False, True)


async def test_rules_that_leave_nothing_callable_end_the_run_without_an_llm_call() -> None:
    # After `a`, only `b` may follow; `b` is not among the agent's tools, and a call is demanded.
    rules = [
        {"type": "run_first", "tool_name": "conversation_search"},
        {"type": "constrain_child_tools", "tool_name": "conversation_search", "children": ["missing"]},
    ]
    h = Harness(ScriptedLLM([tool_calls(("conversation_search", {"query": "q"}))]))
    agent = h.store.add_agent(MODEL, tools=[builtin("conversation_search")], tool_rules=rules)
    run_id = await h.run(agent, input="hi")
    assert h.outcome(run_id) == ("completed", "tool_rule")
    assert len(h.llm.requests) == 1


# -- approvals ---------------------------------------------------------------------------------


async def test_a_client_tool_call_pauses_the_run_for_the_client_and_its_return_resumes_it() -> None:
    client_tools = [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
    h = Harness(ScriptedLLM([tool_calls(("get_weather", {})), text("it is sunny")]))
    agent = h.store.add_agent(MODEL)
    first = await h.run(agent, input="weather?", client_tools=client_tools)
    assert h.outcome(first) == ("completed", "requires_approval")
    (request,) = [m for m in h.store.messages if m.message_type == "approval_request_message"]
    assert request.client_tool_names == ["get_weather"]
    assert "_client_tool_names" not in request.body
    assert h.store.threads[h.store.runs[first].thread].pending_approval_id == request.id

    # A plain message cannot pass the pending request.
    blocked = await h.run(agent, input="hello?")
    assert h.outcome(blocked) == ("failed", "error")
    assert "PENDING_APPROVAL" in str(h.store.runs[blocked].error)

    answer = {
        "type": "tool_return",
        "tool_returns": [{"tool_call_id": "call-1", "status": "success", "tool_return": "sunny"}],
    }
    second = await h.run(agent, inputs=[answer], client_tools=client_tools)
    assert h.outcome(second) == ("completed", "end_turn")
    assert h.kinds(second) == ["approval_response_message", "tool_return_message", "assistant_message"]
    assert h.llm.requests[-1].messages[-1] == {"role": "tool", "tool_call_id": "call-1", "content": "sunny"}
    assert h.store.threads[h.store.runs[first].thread].pending_approval_id is None


async def test_an_approved_server_tool_runs_before_the_next_llm_call() -> None:
    rules = [{"type": "requires_approval", "tool_name": "ping"}]
    runner = FakeRunner({"ping": lambda: "pong"})
    h = Harness(ScriptedLLM([tool_calls(("ping", {})), text("done")]), runner)
    agent = h.store.add_agent(MODEL, tools=[custom("ping")], tool_rules=rules)
    first = await h.run(agent, input="ping please")
    assert h.outcome(first) == ("completed", "requires_approval")
    assert runner.calls == []

    approve = {"type": "approval", "approvals": [{"tool_call_id": "call-1", "approve": True}]}
    second = await h.run(agent, inputs=[approve])
    assert h.outcome(second) == ("completed", "end_turn")
    assert runner.calls == [("ping", {})]
    assert h.kinds(second) == ["approval_response_message", "tool_return_message", "assistant_message"]
    assert h.llm.requests[-1].messages[-1]["content"] == "pong"


async def test_a_denied_call_is_answered_with_the_reason_and_never_runs() -> None:
    rules = [{"type": "requires_approval", "tool_name": "ping"}]
    runner = FakeRunner({"ping": lambda: "pong"})
    h = Harness(ScriptedLLM([tool_calls(("ping", {})), text("ok, not pinging")]), runner)
    agent = h.store.add_agent(MODEL, tools=[custom("ping")], tool_rules=rules)
    await h.run(agent, input="ping please")
    deny = {"type": "approval", "approvals": [{"tool_call_id": "call-1", "approve": False, "reason": "no"}]}
    second = await h.run(agent, inputs=[deny])
    assert h.outcome(second) == ("completed", "end_turn")
    assert runner.calls == []
    (denied,) = [m for m in h.store.messages if m.message_type == "tool_return_message"]
    assert denied.is_err and denied.body["tool_return"] == "The user denied this tool call. Reason: no"


async def test_a_client_tool_cannot_be_approved_instead_of_answered() -> None:
    client_tools = [{"name": "get_weather"}]
    h = Harness(ScriptedLLM([tool_calls(("get_weather", {}))]))
    agent = h.store.add_agent(MODEL)
    await h.run(agent, input="weather?", client_tools=client_tools)
    approve = {"type": "approval", "approvals": [{"tool_call_id": "call-1", "approve": True}]}
    second = await h.run(agent, inputs=[approve], client_tools=client_tools)
    assert h.outcome(second) == ("failed", "error")
    assert "client-side tool" in str(h.store.runs[second].error)


# -- compaction --------------------------------------------------------------------------------


async def test_a_prompt_over_the_window_is_compacted_and_the_run_goes_on() -> None:
    h = Harness(ScriptedLLM())
    agent = h.store.add_agent(MODEL, context_window=100_000, max_tokens=200)
    for i in range(6):
        h.llm.script(text(f"answer {i} " + "y" * 400))
        await h.run(agent, input=f"question {i} " + "x" * 400)
    # The history (about 1,300 tokens by the estimate) now outgrows the agent's window.
    h.store.agents[agent].snapshot.context_window = 1_500
    calls_before = len(h.llm.requests)

    def summary_or_answer(request: LLMRequest) -> LLMResponse:
        # The summariser may take the transcript in more than one call.
        summarising = "memory of an AI agent" in str(request.messages[0]["content"])
        return text("the summary") if summarising else text("final answer")

    h.llm.script(*[summary_or_answer] * 5)
    run_id = await h.run(agent, input="last question")
    assert h.outcome(run_id) == ("completed", "end_turn")
    # Summary calls, then the answer with the summary and only the newest messages in its prompt.
    *summary_calls, answer_call = h.llm.requests[calls_before:]
    assert summary_calls and "question 0" in json.dumps(summary_calls[0].messages)
    prompt = json.dumps(answer_call.messages)
    assert "the summary" in prompt and "question 0" not in prompt and "last question" in prompt
    assert h.kinds(run_id) == ["user_message", "summary_message", "event_message", "assistant_message"]
    state = h.store.threads[h.store.runs[run_id].thread]
    assert state.context_summary == "the summary" and state.context_start_seq is not None


async def test_a_system_prompt_over_the_window_stops_the_run() -> None:
    h = Harness(ScriptedLLM())
    agent = h.store.add_agent(MODEL, system="s" * 20_000, context_window=2_000)
    run_id = await h.run(agent, input="hi")
    assert h.outcome(run_id) == ("failed", "context_window_overflow_in_system_prompt")
    assert h.llm.requests == []


async def test_a_forced_compaction_summarises_without_a_turn() -> None:
    h = Harness(ScriptedLLM())
    agent = h.store.add_agent(MODEL)
    for i in range(4):
        h.llm.script(text(f"answer {i}"))
        await h.run(agent, input=f"question {i}")
    h.llm.script(text("what was said"))
    run_id = h.store.add_run(agent, RunRequest(compaction=CompactionSettings(mode="all")))
    await h.loop.execute(run_id, RunControl())
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert h.kinds(run_id) == ["summary_message", "event_message"]
    assert h.store.threads[h.store.runs[run_id].thread].context_summary == "what was said"


async def test_a_compaction_that_loses_the_race_writes_nothing() -> None:
    """Another compaction of the thread moved the context's start while this one summarised."""
    h = Harness(ScriptedLLM())
    agent = h.store.add_agent(MODEL)
    for i in range(4):
        h.llm.script(text(f"answer {i}"))
        await h.run(agent, input=f"question {i}")
    thread = h.store.runs[next(iter(h.store.runs))].thread

    def summarise(_request: LLMRequest) -> LLMResponse:
        h.store.threads[thread].context_start_seq = 3  # the other compaction's commit
        return text("late summary")

    h.llm.script(summarise)
    run_id = h.store.add_run(agent, RunRequest(compaction=CompactionSettings(mode="all")))
    await h.loop.execute(run_id, RunControl())
    assert h.kinds(run_id) == []
    assert h.store.threads[thread].context_summary is None


# -- fencing -----------------------------------------------------------------------------------


async def test_a_run_cancelled_during_its_llm_call_writes_nothing_more() -> None:
    h = Harness(ScriptedLLM())
    agent = h.store.add_agent(MODEL)
    run_ids: list[str] = []

    def answer_after_cancel(_request: LLMRequest) -> LLMResponse:
        assert h.store.cancel(run_ids[0])
        return text("too late")

    h.llm.script(answer_after_cancel)
    run_ids.append(h.store.add_run(agent, request_of(input="hi")))
    await h.loop.execute(run_ids[0], RunControl())
    assert h.outcome(run_ids[0]) == ("cancelled", "cancelled")
    assert h.kinds(run_ids[0]) == ["user_message"]
    assert h.store.runs[run_ids[0]].steps == []
    assert h.store.agents[agent].last_stop_reason == "cancelled"


async def test_a_run_handed_back_during_its_llm_call_is_fenced_out() -> None:
    """A presumed-dead execution (its run re-queued with attempt 2) must not land its step."""
    h = Harness(ScriptedLLM())
    agent = h.store.add_agent(MODEL)
    run_id = h.store.add_run(agent, request_of(input="hi"))

    async def handed_back(_request: LLMRequest) -> LLMResponse:
        assert await h.store.hand_back(run_id, "worker presumed dead") is None
        assert h.store.runs[run_id].status is RunStatus.CREATED
        return text("from the old execution")

    h.llm.script(handed_back, text("from the new execution"))
    await h.loop.execute(run_id, RunControl())
    assert h.store.runs[run_id].status is RunStatus.CREATED  # waiting for its next execution
    assert h.store.thread_messages(agent) == []  # its input went with the hand-back
    await h.loop.execute(run_id, RunControl())
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert [m.body.get("content") for m in h.store.thread_messages(agent)] == ["hi", "from the new execution"]
    assert h.store.runs[run_id].attempt == 2


async def test_a_run_cancelled_before_a_tool_with_effects_never_runs_it() -> None:
    runner = FakeRunner({"launch": lambda: "launched"})
    h = Harness(ScriptedLLM(), runner)
    agent = h.store.add_agent(MODEL, tools=[custom("launch")])
    run_id = h.store.add_run(agent, request_of(input="go"))

    def call_then_cancel(_request: LLMRequest) -> LLMResponse:
        h.store.cancel(run_id)
        return tool_calls(("launch", {}))

    h.llm.script(call_then_cancel)
    await h.loop.execute(run_id, RunControl())
    assert runner.calls == []
    assert h.outcome(run_id) == ("cancelled", "cancelled")


async def test_a_tool_with_effects_marks_the_run_so_a_hand_back_fails_it() -> None:
    h = Harness(ScriptedLLM(), FakeRunner({"launch": lambda: "launched"}))
    agent = h.store.add_agent(MODEL, tools=[custom("launch")])
    run_id = h.store.add_run(agent, request_of(input="go"))
    stop = RunControl()

    async def interrupted(_request: LLMRequest) -> LLMResponse:
        stop.interrupt("shutdown")
        await asyncio.sleep(3600)
        raise AssertionError("not reached")

    h.llm.script(tool_calls(("launch", {})), interrupted)
    await h.loop.execute(run_id, stop)
    run = h.store.runs[run_id]
    assert run.effects_started
    assert h.outcome(run_id) == ("failed", "error")
    assert "shut down" in str(run.error) and "not retried" in str(run.error)


async def test_shutdown_before_any_effect_re_queues_the_run() -> None:
    h = Harness(ScriptedLLM())
    agent = h.store.add_agent(MODEL)
    run_id = h.store.add_run(agent, request_of(input="hi"))
    stop = RunControl()

    async def interrupted(_request: LLMRequest) -> LLMResponse:
        stop.interrupt("shutdown")
        await asyncio.sleep(3600)
        raise AssertionError("not reached")

    h.llm.script(interrupted)
    await h.loop.execute(run_id, stop)
    assert (h.store.runs[run_id].status, h.store.runs[run_id].attempt) == (RunStatus.CREATED, 2)
    assert h.finished == []


async def test_a_finished_run_with_a_callback_is_handed_to_the_dispatcher() -> None:
    h = Harness(ScriptedLLM([text("hi")]))
    agent = h.store.add_agent(MODEL)
    run_id = h.store.add_run(agent, request_of(input="hi"), callback_url="http://127.0.0.1:9/cb")
    await h.loop.execute(run_id, RunControl())
    assert h.finished == [run_id]


@pytest.mark.parametrize("thinking", ["false", False, "0"])
async def test_thinking_can_be_switched_off_by_string_or_flag(thinking: object) -> None:
    h = Harness(ScriptedLLM([text("hi")]))
    agent = h.store.add_agent(MODEL)
    await h.run(agent, input="hi", enable_thinking=thinking)
    assert h.llm.requests[0].enable_thinking is False
