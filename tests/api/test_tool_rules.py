"""Tool rules in the agent loop: what the LLM is offered at each step, and what happens to its calls.

Each rule is checked on both sides of the fake LLM: the ``tools`` list and ``tool_choice`` of every
request it received, and the run's outcome (status, stop reason, tool returns). The tools are small
custom tools returning their ``text`` argument, so a test controls a tool's output through the
scripted call's arguments. Agents are made without the base tools, so the offered lists are exact.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from letta_client import Letta
from letta_client.types.agents import ApprovalRequestMessage
from letta_client.types.agents import ToolCall as SdkToolCall
from tests.fakes.fake_llm import FakeLLM, Reply, Text, ToolCall, ToolCalls
from tests.support import ThreadServer, api_error, wait_for_run

# The sandbox starts a process per call: a run of several calls needs more than the default 15 s.
RUN_TIMEOUT = 60.0


def _echo_tools(client: Letta, *labels: str) -> list[str]:
    """Custom tools named after ``labels`` (made unique), each returning its ``text`` argument."""
    names = []
    for label in labels:
        name = f"{label}_{uuid.uuid4().hex[:8]}"
        client.tools.create(
            source_code=f'''
def {name}(text: str = "ok") -> str:
    """Returns its text.

    Args:
        text: What to return.
    """
    return text
'''
        )
        names.append(name)
    return names


def _agent(client: Letta, handle: str, tools: list[str], rules: list[dict[str, Any]]) -> str:
    rules_param: Any = rules
    agent = client.agents.create(model=handle, tools=tools, include_base_tools=False, tool_rules=rules_param)
    return agent.id


def _run(client: Letta, agent_id: str, text: str = "go") -> Any:
    run = client.agents.messages.create_async(agent_id=agent_id, input=text)
    return wait_for_run(client, run.id, timeout=RUN_TIMEOUT)


def _offered(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or []]


def _choices(fake_llm: FakeLLM, model: str) -> list[tuple[list[str], str | None]]:
    """Per LLM request: the tool names offered and the ``tool_choice`` (None when not sent)."""
    return [(_offered(r), r.get("tool_choice")) for r in fake_llm.requests(model)]


def _returns(client: Letta, run_id: str) -> list[Any]:
    return [m for m in client.runs.messages.list(run_id).items if m.message_type == "tool_return_message"]


def _calls(client: Letta, run_id: str) -> list[Any]:
    return [m for m in client.runs.messages.list(run_id).items if m.message_type == "tool_call_message"]


def _tool_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["messages"] if m["role"] == "tool"]


def test_run_first_offers_only_the_init_tool_and_its_args_win(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    init, other = _echo_tools(client, "init", "other")
    agent_id = _agent(
        client,
        handle,
        [init, other],
        [{"type": "run_first", "tool_name": init, "args": {"text": "from-rule"}}],
    )
    call = ToolCall(init, {"text": "from-llm"})
    fake_llm.script(model, call, Text("done"))
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _choices(fake_llm, model) == [([init], "required"), ([init, other], None)]
    (ret,) = _returns(client, done.id)
    assert (ret.name, ret.status, ret.tool_return) == (init, "success", "from-rule")
    (recorded,) = _calls(client, done.id)
    assert json.loads(recorded.tool_call.arguments) == {"text": "from-rule"}
    assert _tool_messages(fake_llm.requests(model)[1]) == [
        {"role": "tool", "tool_call_id": call.id, "content": "from-rule"}
    ]


def test_run_first_refuses_another_tool_first_and_prefills_only_the_first_call(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    init, other = _echo_tools(client, "init", "other")
    agent_id = _agent(
        client,
        handle,
        [init, other],
        [{"type": "run_first", "tool_name": init, "args": {"text": "from-rule"}}],
    )
    fake_llm.script(
        model,
        ToolCall(other, {"text": "too early"}),
        ToolCall(init, {"text": "a"}),
        ToolCall(init, {"text": "b"}),
        Text("done"),
    )
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _choices(fake_llm, model) == [
        ([init], "required"),
        ([init], "required"),  # the refused call does not count as the first call
        ([init, other], None),
        ([init, other], None),
    ]
    returns = _returns(client, done.id)
    assert [(r.name, r.status) for r in returns] == [(other, "error"), (init, "success"), (init, "success")]
    assert "first tool call of this run must be one of" in returns[0].tool_return
    assert [r.tool_return for r in returns[1:]] == ["from-rule", "b"]


def test_exit_loop_ends_the_run_right_after_the_tool(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    (finish,) = _echo_tools(client, "finish")
    agent_id = _agent(client, handle, [finish], [{"type": "exit_loop", "tool_name": finish}])
    fake_llm.script(model, ToolCall(finish, {"text": "bye"}), Text("never asked for"))
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "tool_rule")
    assert len(fake_llm.requests(model)) == 1
    assert fake_llm.pending(model) == 1
    (ret,) = _returns(client, done.id)
    assert (ret.status, ret.tool_return) == ("success", "bye")
    kinds = [m.message_type for m in client.runs.messages.list(done.id).items]
    assert kinds == ["user_message", "tool_call_message", "tool_return_message"]


def test_constrain_child_tools_offers_only_the_children_after_the_parent(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    parent, child_a, child_b, other = _echo_tools(client, "parent", "child_a", "child_b", "other")
    everything = [parent, child_a, child_b, other]
    agent_id = _agent(
        client,
        handle,
        everything,
        [{"type": "constrain_child_tools", "tool_name": parent, "children": [child_a, child_b]}],
    )
    fake_llm.script(
        model,
        ToolCall(parent, {}),
        ToolCall(other, {}),  # not a child: refused
        ToolCall(child_b, {}),
        Text("done"),
    )
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _choices(fake_llm, model) == [
        (everything, None),
        ([child_a, child_b], "required"),
        ([child_a, child_b], "required"),  # still constrained: the refused call does not count
        (everything, None),
    ]
    returns = _returns(client, done.id)
    assert [(r.name, r.status) for r in returns] == [
        (parent, "success"),
        (other, "error"),
        (child_b, "success"),
    ]
    assert child_a in returns[1].tool_return and child_b in returns[1].tool_return


def test_constrain_child_tools_prefills_child_args(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    parent, child = _echo_tools(client, "parent", "child")
    rule = {
        "type": "constrain_child_tools",
        "tool_name": parent,
        "children": [child],
        "child_arg_nodes": [{"name": child, "args": {"text": "from-rule"}}],
    }
    agent_id = _agent(client, handle, [parent, child], [rule])
    fake_llm.script(
        model,
        ToolCall(parent, {}),
        ToolCall(child, {"text": "from-llm"}),
        ToolCall(child, {"text": "free"}),
        Text("done"),
    )
    done = _run(client, agent_id)
    assert done.status == "completed"
    assert [r.tool_return for r in _returns(client, done.id)] == ["ok", "from-rule", "free"]


def test_parent_last_tool_gates_the_child(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    parent, child = _echo_tools(client, "parent", "child")
    agent_id = _agent(
        client,
        handle,
        [parent, child],
        [{"type": "parent_last_tool", "tool_name": parent, "children": [child]}],
    )
    fake_llm.script(
        model,
        ToolCall(child, {}),  # before the parent ran: refused
        ToolCall(parent, {}),
        ToolCall(child, {}),  # right after the parent: allowed
        Text("done"),
    )
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _choices(fake_llm, model) == [
        ([parent], None),
        ([parent], None),
        ([parent, child], None),
        ([parent], None),  # the child was the last tool, so it is gated again
    ]
    returns = _returns(client, done.id)
    assert [(r.name, r.status) for r in returns] == [
        (child, "error"),
        (parent, "success"),
        (child, "success"),
    ]
    assert f"may only be called right after '{parent}'" in returns[0].tool_return
    first_error = _tool_messages(fake_llm.requests(model)[1])
    assert first_error[-1]["content"] == returns[0].tool_return


def test_conditional_maps_the_output_to_the_child_and_falls_back_to_default_child(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    check, on_yes, on_no, fallback = _echo_tools(client, "check", "on_yes", "on_no", "fallback")
    everything = [check, on_yes, on_no, fallback]
    rule = {
        "type": "conditional",
        "tool_name": check,
        "child_output_mapping": {"yes": on_yes, "no": on_no},
        "default_child": fallback,
    }
    agent_id = _agent(client, handle, everything, [rule])
    fake_llm.script(
        model,
        ToolCall(check, {"text": "yes"}),
        ToolCall(on_no, {}),  # the wrong child for "yes": refused
        ToolCall(on_yes, {}),
        ToolCall(check, {"text": " no "}),  # outputs are compared stripped
        ToolCall(on_no, {}),
        ToolCall(check, {"text": "maybe"}),  # no key matches: default_child
        ToolCall(fallback, {}),
        Text("done"),
    )
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _choices(fake_llm, model) == [
        (everything, None),
        ([on_yes], "required"),
        ([on_yes], "required"),
        (everything, None),
        ([on_no], "required"),
        (everything, None),
        ([fallback], "required"),
        (everything, None),
    ]
    returns = _returns(client, done.id)
    assert [(r.name, r.status) for r in returns] == [
        (check, "success"),
        (on_no, "error"),
        (on_yes, "success"),
        (check, "success"),
        (on_no, "success"),
        (check, "success"),
        (fallback, "success"),
    ]
    assert f"must be '{on_yes}'" in returns[1].tool_return


def test_conditional_require_output_mapping_reports_an_unmapped_output(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    check, on_yes = _echo_tools(client, "check", "on_yes")
    rule = {
        "type": "conditional",
        "tool_name": check,
        "child_output_mapping": {"yes": on_yes},
        "require_output_mapping": True,
    }
    agent_id = _agent(client, handle, [check, on_yes], [rule])
    fake_llm.script(model, ToolCall(check, {"text": "perhaps"}), Text("noted"))
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    (ret,) = _returns(client, done.id)
    assert (ret.name, ret.status, ret.is_err) == (check, "error", True)
    assert "perhaps" in ret.tool_return and "Tool rule violated" in ret.tool_return
    # No match and no default_child: the next step is not constrained.
    assert _choices(fake_llm, model) == [([check, on_yes], None), ([check, on_yes], None)]
    (seen,) = _tool_messages(fake_llm.requests(model)[1])
    assert seen["content"] == ret.tool_return


def test_continue_loop_goes_on_after_the_tool(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    (keep_going,) = _echo_tools(client, "keep_going")
    agent_id = _agent(client, handle, [keep_going], [{"type": "continue_loop", "tool_name": keep_going}])
    call = ToolCall(keep_going, {"text": "more"})
    fake_llm.script(model, call, Text("finished"))
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _choices(fake_llm, model) == [([keep_going], None), ([keep_going], None)]
    assert _tool_messages(fake_llm.requests(model)[1]) == [
        {"role": "tool", "tool_call_id": call.id, "content": "more"}
    ]
    kinds = [m.message_type for m in client.runs.messages.list(done.id).items]
    assert kinds == ["user_message", "tool_call_message", "tool_return_message", "assistant_message"]


def test_the_send_message_tool_ends_the_turn_unless_continue_loop(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    (echo,) = _echo_tools(client, "echo")
    plain = _agent(client, handle, [echo], [])
    fake_llm.script(model, ToolCall("send_message", {"message": "hi"}), Text("never asked for"))
    done = _run(client, plain)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert len(fake_llm.requests(model)) == 1
    (ret,) = _returns(client, done.id)
    assert (ret.name, ret.status) == ("send_message", "success")

    other_model = f"{model}-continue"
    going_on = _agent(
        client, f"openai/{other_model}", [echo], [{"type": "continue_loop", "tool_name": "send_message"}]
    )
    call = ToolCall("send_message", {"message": "hi"})
    fake_llm.script(other_model, call, Text("and more"))
    done = _run(client, going_on)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    requests = fake_llm.requests(other_model)
    assert len(requests) == 2
    assert _tool_messages(requests[1])[-1]["tool_call_id"] == call.id


def test_max_count_per_step_refuses_a_call_beyond_the_limit(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    counted, other = _echo_tools(client, "counted", "other")
    agent_id = _agent(
        client,
        handle,
        [counted, other],
        [{"type": "max_count_per_step", "tool_name": counted, "max_count_limit": 2}],
    )
    fake_llm.script(
        model,
        ToolCall(counted, {"text": "1"}),
        ToolCall(counted, {"text": "2"}),
        ToolCall(counted, {"text": "3"}),
        Text("done"),
    )
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _choices(fake_llm, model) == [
        ([counted, other], None),
        ([counted, other], None),
        ([other], None),
        ([other], None),
    ]
    returns = _returns(client, done.id)
    assert [(r.status, bool(r.is_err)) for r in returns] == [
        ("success", False),
        ("success", False),
        ("error", True),
    ]
    assert [r.tool_return for r in returns[:2]] == ["1", "2"]
    assert "at most 2 times per run" in returns[2].tool_return

    # The count is per run: the next run may call it again.
    fake_llm.script(model, ToolCall(counted, {"text": "again"}), Text("done"))
    again = _run(client, agent_id)
    assert [(r.status, r.tool_return) for r in _returns(client, again.id)] == [("success", "again")]


def test_max_count_per_step_counts_calls_within_one_response(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    (counted,) = _echo_tools(client, "counted")
    agent_id = _agent(
        client,
        handle,
        [counted],
        [{"type": "max_count_per_step", "tool_name": counted, "max_count_limit": 2}],
    )
    fake_llm.script(
        model,
        ToolCalls([ToolCall(counted, {"text": str(i)}) for i in (1, 2, 3)]),
        Text("done"),
    )
    done = _run(client, agent_id)
    assert done.status == "completed"
    returns = _returns(client, done.id)
    assert [(r.status, r.tool_return) for r in returns[:2]] == [("success", "1"), ("success", "2")]
    # The third call of the same response is beyond the limit: refused, not run.
    assert (returns[2].status, returns[2].tool_return) != ("success", "3")
    assert returns[2].status == "error" and "at most 2 times per run" in returns[2].tool_return


def test_required_before_exit_keeps_the_run_going_until_the_tool_was_called(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    save, other = _echo_tools(client, "save", "other")
    agent_id = _agent(client, handle, [save, other], [{"type": "required_before_exit", "tool_name": save}])
    fake_llm.script(model, Text("all done"), ToolCall(save, {"text": "saved"}), Text("now really done"))
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    requests = fake_llm.requests(model)
    assert len(requests) == 3
    reminder = requests[1]["messages"][-1]
    assert reminder["role"] == "user" and save in reminder["content"]
    assert requests[1]["messages"][-2] == {"role": "assistant", "content": "all done"}
    kinds = [m.message_type for m in client.runs.messages.list(done.id).items]
    assert kinds == [
        "user_message",
        "assistant_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    assert [(r.name, r.status) for r in _returns(client, done.id)] == [(save, "success")]


def test_requires_approval_rule_stops_the_run_for_a_human(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    guarded, free = _echo_tools(client, "guarded", "free")
    agent_id = _agent(client, handle, [guarded, free], [{"type": "requires_approval", "tool_name": guarded}])
    call = ToolCall(guarded, {"text": "hold on"})
    fake_llm.script(model, call, Text("never asked for"))
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "requires_approval")
    # Needing approval does not hide the tool from the LLM.
    assert _choices(fake_llm, model) == [([guarded, free], None)]
    messages = client.runs.messages.list(done.id).items
    assert [m.message_type for m in messages] == ["user_message", "approval_request_message"]
    request = messages[1]
    assert isinstance(request, ApprovalRequestMessage) and isinstance(request.tool_call, SdkToolCall)
    assert request.tool_call.tool_call_id == call.id
    state = client.agents.retrieve(agent_id, include=["agent.pending_approval"])
    assert state.pending_approval is not None and state.pending_approval.id == messages[1].id


BAD_RULES: list[tuple[dict[str, Any], list[Any]]] = [
    ({"type": "no_such_rule", "tool_name": "x"}, ["type"]),
    ({"tool_name": "x"}, ["type"]),
    ({"type": "exit_loop"}, ["tool_name"]),
    ({"type": "exit_loop", "tool_name": "x", "children": ["y"]}, ["children"]),
    ({"type": "constrain_child_tools", "tool_name": "x", "children": []}, ["children"]),
    ({"type": "max_count_per_step", "tool_name": "x", "max_count_limit": 0}, ["max_count_limit"]),
    ({"type": "conditional", "tool_name": "x"}, ["child_output_mapping"]),
    (
        {"type": "conditional", "tool_name": "x", "child_output_mapping": {"a": "y"}, "default_child": 3},
        ["default_child"],
    ),
    ({"type": "run_first", "tool_name": "x", "args": "text=1"}, ["args"]),
    (
        {
            "type": "constrain_child_tools",
            "tool_name": "x",
            "children": ["y"],
            "child_arg_nodes": [{"name": "z", "args": {}}],
        },
        ["child_arg_nodes", 0, "name"],
    ),
]


@pytest.mark.parametrize(("rule", "field"), BAD_RULES, ids=[f"{r.get('type')}-{f[0]}" for r, f in BAD_RULES])
def test_tool_rules_are_validated_on_create_and_update(
    server: ThreadServer, handle: str, rule: dict[str, Any], field: list[Any]
) -> None:
    client = server.client()
    good: Any = [{"type": "exit_loop", "tool_name": "x"}]
    bad: Any = [*good, rule]
    loc = ["body", "tool_rules", 1, *field]

    created = api_error(lambda: client.agents.create(model=handle, tool_rules=bad), 422)
    assert [e["loc"] for e in created["errors"]] == [loc]
    assert "tool_rules[1]" in created["detail"]

    agent = client.agents.create(model=handle, tool_rules=good)
    updated = api_error(lambda: client.agents.update(agent.id, tool_rules=bad), 422)
    assert [e["loc"] for e in updated["errors"]] == [loc]
    # The failed update left the agent's rules as they were.
    assert [r.type for r in client.agents.retrieve(agent.id).tool_rules or []] == ["exit_loop"]


def test_valid_tool_rules_are_stored_and_replaced_on_update(server: ThreadServer, handle: str) -> None:
    client = server.client()
    rules: Any = [
        {"type": "run_first", "tool_name": "a", "args": {"k": 1}},
        {"type": "max_count_per_step", "tool_name": "b", "max_count_limit": 3},
    ]
    agent = client.agents.create(model=handle, tool_rules=rules)
    assert [(r.type, r.tool_name) for r in agent.tool_rules or []] == [
        ("run_first", "a"),
        ("max_count_per_step", "b"),
    ]
    replaced: Any = [{"type": "exit_loop", "tool_name": "c"}]
    updated = client.agents.update(agent.id, tool_rules=replaced)
    assert [(r.type, r.tool_name) for r in updated.tool_rules or []] == [("exit_loop", "c")]


def test_several_calls_in_one_response_all_run_and_return_in_order(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    first, second = _echo_tools(client, "first", "second")
    agent_id = _agent(client, handle, [first, second], [])
    calls = [ToolCall(first, {"text": "1"}), ToolCall(second, {"text": "2"}), ToolCall(first, {"text": "3"})]
    fake_llm.script(model, ToolCalls(calls), Text("done"))
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    returns = _returns(client, done.id)
    assert [(r.tool_call_id, r.name, r.status, r.tool_return) for r in returns] == [
        (calls[0].id, first, "success", "1"),
        (calls[1].id, second, "success", "2"),
        (calls[2].id, first, "success", "3"),
    ]
    assert [c.tool_call.tool_call_id for c in _calls(client, done.id)] == [c.id for c in calls]
    second_request = fake_llm.requests(model)[1]
    assert [(m["tool_call_id"], m["content"]) for m in _tool_messages(second_request)] == [
        (calls[0].id, "1"),
        (calls[1].id, "2"),
        (calls[2].id, "3"),
    ]
    (asked,) = [m for m in second_request["messages"] if m.get("tool_calls")]
    assert [c["id"] for c in asked["tool_calls"]] == [c.id for c in calls]


def test_a_refused_call_between_others_keeps_the_response_order(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    echo, parent, gated = _echo_tools(client, "echo", "parent", "gated")
    agent_id = _agent(
        client,
        handle,
        [echo, parent, gated],
        [{"type": "parent_last_tool", "tool_name": parent, "children": [gated]}],
    )
    # The middle call is refused by the rules (its parent did not run right before it).
    calls = [ToolCall(echo, {"text": "1"}), ToolCall(gated, {}), ToolCall(echo, {"text": "3"})]
    fake_llm.script(model, ToolCalls(calls), Text("done"))
    done = _run(client, agent_id)
    assert done.status == "completed"
    returns = _returns(client, done.id)
    assert [(r.tool_call_id, r.status) for r in returns] == [
        (calls[0].id, "success"),
        (calls[1].id, "error"),
        (calls[2].id, "success"),
    ]
    assert [c.tool_call.tool_call_id for c in _calls(client, done.id)] == [c.id for c in calls]
    # A later run rebuilds the context from the stored messages: the LLM's order must survive.
    fake_llm.script(model, Text("again"))
    _run(client, agent_id, "next")
    last = fake_llm.requests(model)[-1]
    (asked,) = [m for m in last["messages"] if m.get("tool_calls")]
    assert [c["id"] for c in asked["tool_calls"]] == [c.id for c in calls]
    assert [m["tool_call_id"] for m in _tool_messages(last)] == [c.id for c in calls]


@pytest.mark.parametrize("rule_type", ["run_first", "constrain_child_tools"])
def test_a_call_of_an_unknown_tool_does_not_satisfy_the_rules(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, rule_type: str
) -> None:
    client = server.client()
    first, other = _echo_tools(client, "first", "other")
    if rule_type == "run_first":
        rule: dict[str, Any] = {"type": "run_first", "tool_name": first}
        script: list[Reply] = [ToolCall("no_such_tool", {}), ToolCall(first, {}), Text("done")]
        expected = [([first], "required"), ([first], "required"), ([first, other], None)]
    else:
        rule = {"type": "constrain_child_tools", "tool_name": other, "children": [first]}
        script = [ToolCall(other, {}), ToolCall("no_such_tool", {}), ToolCall(first, {}), Text("done")]
        expected = [
            ([first, other], None),
            ([first], "required"),
            ([first], "required"),
            ([first, other], None),
        ]
    agent_id = _agent(client, handle, [first, other], [rule])
    fake_llm.script(model, *script)
    done = _run(client, agent_id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    unknown = [r for r in _returns(client, done.id) if r.name == "no_such_tool"]
    assert [r.status for r in unknown] == ["error"]
    # The hallucinated name ran nothing, so it must not count as the required call.
    assert _choices(fake_llm, model) == expected
