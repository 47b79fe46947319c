"""Tool rules in the agent loop: what the LLM is offered at each step, and what happens to its calls.

Each rule is checked on both sides of the scripted LLM: the tools and ``tool_choice`` of every request
it received, and what the loop wrote to the in-memory store (tool returns, stop reason, message kinds).
The tools are echo tools returning their ``text`` argument, so a test controls a tool's output through
the scripted call's arguments. ``tests/api/test_tool_rules.py`` keeps the rules' wire side (validation,
storage) and one run over HTTP with the real sandbox.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.loop_support import MODEL, FakeRunner, Harness, custom, tool_names, user_texts

from agenthost.llm.base import LLMRequest, LLMResponse
from agenthost.llm.scripted import ScriptedLLM, text, tool_calls
from agenthost.thread import Thread

TEXT_PARAMETER = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "What to return."}},
}


def _echo(text: str = "ok") -> str:
    return text


def _harness(names: list[str], rules: list[dict[str, Any]], *script: LLMResponse) -> tuple[Harness, str]:
    """A harness whose agent has echo tools named ``names`` (in that order) and these rules."""
    h = Harness(ScriptedLLM(script), FakeRunner(dict.fromkeys(names, _echo)))
    tools = [custom(name, parameters=TEXT_PARAMETER) for name in names]
    return h, h.store.add_agent(MODEL, tools=tools, tool_rules=rules)


def _call(name: str, **args: Any) -> LLMResponse:
    """A response with one tool call (its id is ``call-1``)."""
    return tool_calls((name, args))


def _choices(h: Harness) -> list[tuple[list[str], str | None]]:
    """Per LLM request: the tool names offered and the ``tool_choice``."""
    return [(tool_names(r), r.tool_choice) for r in h.llm.requests]


def _returns(h: Harness, run_id: str) -> list[tuple[str, str, str]]:
    """The run's tool returns as (tool name, status, text), in order."""
    return [
        (m.body["name"], m.body["status"], m.body["tool_return"])
        for m in h.store.messages
        if m.run_id == run_id and m.message_type == "tool_return_message"
    ]


def _call_ids(h: Harness, run_id: str) -> list[str]:
    return [
        m.body["tool_call"]["tool_call_id"]
        for m in h.store.messages
        if m.run_id == run_id and m.message_type == "tool_call_message"
    ]


def _tool_messages(request: LLMRequest) -> list[dict[str, Any]]:
    return [m for m in request.messages if m["role"] == "tool"]


def _asked_ids(request: LLMRequest) -> list[str]:
    """The ids of the tool calls the LLM made, as its history in ``request`` shows them."""
    (asked,) = [m for m in request.messages if m.get("tool_calls")]
    return [c["id"] for c in asked["tool_calls"]]


# -- run_first ---------------------------------------------------------------------------------


async def test_run_first_offers_only_the_init_tool_and_its_args_win() -> None:
    rules = [{"type": "run_first", "tool_name": "init", "args": {"text": "from-rule"}}]
    h, agent = _harness(["init", "other"], rules, _call("init", text="from-llm"), text("done"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert _choices(h) == [(["init"], "required"), (["init", "other"], None)]
    assert _returns(h, run_id) == [("init", "success", "from-rule")]
    assert h.runner.calls == [("init", {"text": "from-rule"})]
    (recorded,) = [m for m in h.store.messages if m.message_type == "tool_call_message"]
    assert json.loads(recorded.body["tool_call"]["arguments"]) == {"text": "from-rule"}
    assert _tool_messages(h.llm.requests[1]) == [
        {"role": "tool", "tool_call_id": "call-1", "content": "from-rule"}
    ]


async def test_run_first_refuses_another_tool_first_and_prefills_only_the_first_call() -> None:
    rules = [{"type": "run_first", "tool_name": "init", "args": {"text": "from-rule"}}]
    script = [
        _call("other", text="too early"),
        _call("init", text="a"),
        _call("init", text="b"),
        text("done"),
    ]
    h, agent = _harness(["init", "other"], rules, *script)
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert _choices(h) == [
        (["init"], "required"),
        (["init"], "required"),  # the refused call does not count as the first call
        (["init", "other"], None),
        (["init", "other"], None),
    ]
    returns = _returns(h, run_id)
    assert [(name, status) for name, status, _ in returns] == [
        ("other", "error"),
        ("init", "success"),
        ("init", "success"),
    ]
    assert "first tool call of this run must be one of" in returns[0][2]
    assert [ret for _, _, ret in returns[1:]] == ["from-rule", "b"]
    assert [name for name, _ in h.runner.calls] == ["init", "init"]


@pytest.mark.parametrize("rule_type", ["run_first", "constrain_child_tools"])
async def test_a_call_of_an_unknown_tool_does_not_satisfy_the_rules(rule_type: str) -> None:
    if rule_type == "run_first":
        rule: dict[str, Any] = {"type": "run_first", "tool_name": "first"}
        script = [_call("no_such_tool"), _call("first"), text("done")]
        expected = [(["first"], "required"), (["first"], "required"), (["first", "other"], None)]
    else:
        rule = {"type": "constrain_child_tools", "tool_name": "other", "children": ["first"]}
        script = [_call("other"), _call("no_such_tool"), _call("first"), text("done")]
        expected = [
            (["first", "other"], None),
            (["first"], "required"),
            (["first"], "required"),
            (["first", "other"], None),
        ]
    h, agent = _harness(["first", "other"], [rule], *script)
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert [status for name, status, _ in _returns(h, run_id) if name == "no_such_tool"] == ["error"]
    # The hallucinated name ran nothing, so it must not count as the required call.
    assert _choices(h) == expected


# -- exit_loop and continue_loop ---------------------------------------------------------------


async def test_exit_loop_ends_the_run_right_after_the_tool() -> None:
    rules = [{"type": "exit_loop", "tool_name": "finish"}]
    h, agent = _harness(["finish"], rules, _call("finish", text="bye"), text("never asked for"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "tool_rule")
    assert len(h.llm.requests) == 1
    assert h.llm.remaining == 1
    assert _returns(h, run_id) == [("finish", "success", "bye")]
    assert h.kinds(run_id) == ["user_message", "tool_call_message", "tool_return_message"]


async def test_continue_loop_goes_on_after_the_tool() -> None:
    rules = [{"type": "continue_loop", "tool_name": "keep_going"}]
    h, agent = _harness(["keep_going"], rules, _call("keep_going", text="more"), text("finished"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert _choices(h) == [(["keep_going"], None), (["keep_going"], None)]
    assert _tool_messages(h.llm.requests[1]) == [
        {"role": "tool", "tool_call_id": "call-1", "content": "more"}
    ]
    assert h.kinds(run_id) == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]


async def test_the_send_message_tool_ends_the_turn() -> None:
    h, agent = _harness(["echo"], [], _call("send_message", message="hi"), text("never asked for"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert len(h.llm.requests) == 1
    assert [(name, status) for name, status, _ in _returns(h, run_id)] == [("send_message", "success")]


async def test_the_send_message_tool_goes_on_under_continue_loop() -> None:
    rules = [{"type": "continue_loop", "tool_name": "send_message"}]
    h, agent = _harness(["echo"], rules, _call("send_message", message="hi"), text("and more"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert len(h.llm.requests) == 2
    assert _tool_messages(h.llm.requests[1])[-1]["tool_call_id"] == "call-1"


# -- constrain_child_tools, parent_last_tool, conditional --------------------------------------


async def test_constrain_child_tools_offers_only_the_children_after_the_parent() -> None:
    everything = ["parent", "child_a", "child_b", "other"]
    rules = [{"type": "constrain_child_tools", "tool_name": "parent", "children": ["child_a", "child_b"]}]
    script = [_call("parent"), _call("other"), _call("child_b"), text("done")]  # `other` is not a child
    h, agent = _harness(everything, rules, *script)
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert _choices(h) == [
        (everything, None),
        (["child_a", "child_b"], "required"),
        (["child_a", "child_b"], "required"),  # still constrained: the refused call does not count
        (everything, None),
    ]
    returns = _returns(h, run_id)
    assert [(name, status) for name, status, _ in returns] == [
        ("parent", "success"),
        ("other", "error"),
        ("child_b", "success"),
    ]
    assert "child_a" in returns[1][2] and "child_b" in returns[1][2]
    assert [name for name, _ in h.runner.calls] == ["parent", "child_b"]


async def test_constrain_child_tools_prefills_child_args() -> None:
    rule = {
        "type": "constrain_child_tools",
        "tool_name": "parent",
        "children": ["child"],
        "child_arg_nodes": [{"name": "child", "args": {"text": "from-rule"}}],
    }
    script = [_call("parent"), _call("child", text="from-llm"), _call("child", text="free"), text("done")]
    h, agent = _harness(["parent", "child"], [rule], *script)
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    # Only the call right after the parent is prefilled.
    assert [ret for _, _, ret in _returns(h, run_id)] == ["ok", "from-rule", "free"]


async def test_parent_last_tool_gates_the_child() -> None:
    rules = [{"type": "parent_last_tool", "tool_name": "parent", "children": ["child"]}]
    script = [
        _call("child"),  # before the parent ran: refused
        _call("parent"),
        _call("child"),  # right after the parent: allowed
        text("done"),
    ]
    h, agent = _harness(["parent", "child"], rules, *script)
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert _choices(h) == [
        (["parent"], None),
        (["parent"], None),
        (["parent", "child"], None),
        (["parent"], None),  # the child was the last tool, so it is gated again
    ]
    returns = _returns(h, run_id)
    assert [(name, status) for name, status, _ in returns] == [
        ("child", "error"),
        ("parent", "success"),
        ("child", "success"),
    ]
    assert "may only be called right after 'parent'" in returns[0][2]
    assert _tool_messages(h.llm.requests[1])[-1]["content"] == returns[0][2]


async def test_conditional_maps_the_output_to_the_child_and_falls_back_to_default_child() -> None:
    everything = ["check", "on_yes", "on_no", "fallback"]
    rule = {
        "type": "conditional",
        "tool_name": "check",
        "child_output_mapping": {"yes": "on_yes", "no": "on_no"},
        "default_child": "fallback",
    }
    script = [
        _call("check", text="yes"),
        _call("on_no"),  # the wrong child for "yes": refused
        _call("on_yes"),
        _call("check", text=" no "),  # outputs are compared stripped
        _call("on_no"),
        _call("check", text="maybe"),  # no key matches: default_child
        _call("fallback"),
        text("done"),
    ]
    h, agent = _harness(everything, [rule], *script)
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert _choices(h) == [
        (everything, None),
        (["on_yes"], "required"),
        (["on_yes"], "required"),
        (everything, None),
        (["on_no"], "required"),
        (everything, None),
        (["fallback"], "required"),
        (everything, None),
    ]
    returns = _returns(h, run_id)
    assert [(name, status) for name, status, _ in returns] == [
        ("check", "success"),
        ("on_no", "error"),
        ("on_yes", "success"),
        ("check", "success"),
        ("on_no", "success"),
        ("check", "success"),
        ("fallback", "success"),
    ]
    assert "must be 'on_yes'" in returns[1][2]


async def test_conditional_require_output_mapping_reports_an_unmapped_output() -> None:
    rule = {
        "type": "conditional",
        "tool_name": "check",
        "child_output_mapping": {"yes": "on_yes"},
        "require_output_mapping": True,
    }
    h, agent = _harness(["check", "on_yes"], [rule], _call("check", text="perhaps"), text("noted"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    ((name, status, ret),) = _returns(h, run_id)
    assert (name, status) == ("check", "error")
    (row,) = [m for m in h.store.messages if m.message_type == "tool_return_message"]
    assert row.is_err
    assert "perhaps" in ret and "Tool rule violated" in ret
    # No match and no default_child: the next step is not constrained.
    assert _choices(h) == [(["check", "on_yes"], None), (["check", "on_yes"], None)]
    (seen,) = _tool_messages(h.llm.requests[1])
    assert seen["content"] == ret


# -- max_count_per_step and required_before_exit -----------------------------------------------


async def test_max_count_per_step_refuses_a_call_beyond_the_limit() -> None:
    rules = [{"type": "max_count_per_step", "tool_name": "counted", "max_count_limit": 2}]
    script = [
        _call("counted", text="1"),
        _call("counted", text="2"),
        _call("counted", text="3"),
        text("done"),
    ]
    h, agent = _harness(["counted", "other"], rules, *script)
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert _choices(h) == [
        (["counted", "other"], None),
        (["counted", "other"], None),
        (["other"], None),
        (["other"], None),
    ]
    returns = _returns(h, run_id)
    assert [(status, ret) for _, status, ret in returns[:2]] == [("success", "1"), ("success", "2")]
    assert returns[2][1] == "error" and "at most 2 times per run" in returns[2][2]
    assert len(h.runner.calls) == 2

    # The count is per run: the next run may call it again.
    h.llm.script(_call("counted", text="again"), text("done"))
    again = await h.run(agent, input="go")
    assert [(status, ret) for _, status, ret in _returns(h, again)] == [("success", "again")]


async def test_max_count_per_step_counts_calls_within_one_response() -> None:
    rules = [{"type": "max_count_per_step", "tool_name": "counted", "max_count_limit": 2}]
    three = tool_calls(*[("counted", {"text": str(i)}) for i in (1, 2, 3)])
    h, agent = _harness(["counted"], rules, three, text("done"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    returns = _returns(h, run_id)
    assert [(status, ret) for _, status, ret in returns[:2]] == [("success", "1"), ("success", "2")]
    # The third call of the same response is beyond the limit: refused, not run.
    assert returns[2][1] == "error" and "at most 2 times per run" in returns[2][2]
    assert h.runner.calls == [("counted", {"text": "1"}), ("counted", {"text": "2"})]


async def test_required_before_exit_keeps_the_run_going_until_the_tool_was_called() -> None:
    rules = [{"type": "required_before_exit", "tool_name": "save"}]
    script = [text("all done"), _call("save", text="saved"), text("now really done")]
    h, agent = _harness(["save", "other"], rules, *script)
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert len(h.llm.requests) == 3
    reminder = h.llm.requests[1].messages[-1]
    assert reminder["role"] == "user" and "save" in reminder["content"]
    assert user_texts(h.llm.requests[1])[-1] == reminder["content"]
    assert h.llm.requests[1].messages[-2] == {"role": "assistant", "content": "all done"}
    assert h.kinds(run_id) == [
        "user_message",
        "assistant_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    assert _returns(h, run_id) == [("save", "success", "saved")]


# -- requires_approval -------------------------------------------------------------------------


async def test_requires_approval_rule_stops_the_run_for_a_human() -> None:
    rules = [{"type": "requires_approval", "tool_name": "guarded"}]
    h, agent = _harness(["guarded", "free"], rules, _call("guarded", text="hold on"), text("never asked for"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "requires_approval")
    # Needing approval does not hide the tool from the LLM.
    assert _choices(h) == [(["guarded", "free"], None)]
    assert h.kinds(run_id) == ["user_message", "approval_request_message"]
    assert h.runner.calls == []
    (request,) = [m for m in h.store.messages if m.message_type == "approval_request_message"]
    assert request.body["tool_call"]["tool_call_id"] == "call-1"
    assert h.store.threads[Thread(agent)].pending_approval_id == request.id


# -- several calls in one response -------------------------------------------------------------


async def test_several_calls_in_one_response_all_run_and_return_in_order() -> None:
    calls = tool_calls(("first", {"text": "1"}), ("second", {"text": "2"}), ("first", {"text": "3"}))
    h, agent = _harness(["first", "second"], [], calls, text("done"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert _returns(h, run_id) == [
        ("first", "success", "1"),
        ("second", "success", "2"),
        ("first", "success", "3"),
    ]
    ids = ["call-1", "call-2", "call-3"]
    assert _call_ids(h, run_id) == ids
    second_request = h.llm.requests[1]
    assert [(m["tool_call_id"], m["content"]) for m in _tool_messages(second_request)] == [
        ("call-1", "1"),
        ("call-2", "2"),
        ("call-3", "3"),
    ]
    assert _asked_ids(second_request) == ids


async def test_a_refused_call_between_others_keeps_the_response_order() -> None:
    rules = [{"type": "parent_last_tool", "tool_name": "parent", "children": ["gated"]}]
    # The middle call is refused by the rules (its parent did not run right before it).
    calls = tool_calls(("echo", {"text": "1"}), ("gated", {}), ("echo", {"text": "3"}))
    h, agent = _harness(["echo", "parent", "gated"], rules, calls, text("done"))
    run_id = await h.run(agent, input="go")
    assert h.outcome(run_id) == ("completed", "end_turn")
    assert [(name, status) for name, status, _ in _returns(h, run_id)] == [
        ("echo", "success"),
        ("gated", "error"),
        ("echo", "success"),
    ]
    ids = ["call-1", "call-2", "call-3"]
    assert _call_ids(h, run_id) == ids
    # A later run rebuilds the context from the stored messages: the LLM's order must survive.
    h.llm.script(text("again"))
    await h.run(agent, input="next")
    last = h.llm.requests[-1]
    assert _asked_ids(last) == ids
    assert [m["tool_call_id"] for m in _tool_messages(last)] == ids
