"""Tool rules over the wire: their validation on create and update, storage, and one run over HTTP.

What each rule decides (the tools offered, ``tool_choice``, refusals, how a run ends) is tested on the
loop itself in ``tests/unit/test_loop_tool_rules.py``. Here one run proves the rules reach the loop
over HTTP with the real sandbox, checked on both sides of the fake LLM and as the SDK reads the run.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from letta_client import Letta
from tests.fakes.fake_llm import FakeLLM, Text, ToolCall
from tests.support import ThreadServer, api_error, wait_for_run

# The sandbox starts a process per call: a run with a tool call may need more than the default 15 s.
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
