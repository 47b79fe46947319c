"""Custom tools in the agent loop: sandboxed execution, results reaching the LLM, failures, isolation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from letta_client import Letta
from tests.fakes.fake_llm import FakeLLM, Text, ToolCall, ToolCalls
from tests.support import ThreadServer, wait_for_run


def _tool(client: Letta, body: str, *, params: str = "", args_doc: str = "", **kwargs: Any) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    source = f'''
import os, time, json

def {name}({params}) -> str:
    """A test tool.

    Args:
{args_doc or "        (none)"}
    """
{body}
'''
    client.tools.create(source_code=source, **kwargs)
    return name


def _returns(client: Letta, run_id: str) -> list[Any]:
    return [m for m in client.runs.messages.list(run_id).items if m.message_type == "tool_return_message"]


def test_custom_tool_result_reaches_the_llm(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    name = _tool(
        client,
        "    print('looking up', city)\n    return f'{city}: 21C'",
        params="city: str",
        args_doc="        city: The city.",
    )
    agent = client.agents.create(model=handle, tools=[name])
    call = ToolCall(name, {"city": "Lyon"})
    fake_llm.script(model, call, Text("It is 21C in Lyon."))
    run = client.agents.messages.create_async(agent_id=agent.id, input="weather in Lyon?")
    done = wait_for_run(client, run.id, timeout=30)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    (ret,) = _returns(client, run.id)
    assert (ret.status, ret.tool_return, ret.name) == ("success", "Lyon: 21C", name)
    assert ret.stdout == ["looking up Lyon\n"]
    second = fake_llm.requests(model)[1]
    tool_msgs = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_msgs[-1] == {"role": "tool", "tool_call_id": call.id, "content": "Lyon: 21C"}
    first_tools = [t["function"]["name"] for t in fake_llm.requests(model)[0]["tools"]]
    assert name in first_tools


def test_exception_becomes_an_error_return_and_the_run_goes_on(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    name = _tool(client, "    raise ValueError('no such city')")
    agent = client.agents.create(model=handle, tools=[name])
    fake_llm.script(model, ToolCall(name, {}), Text("Sorry."))
    run = client.agents.messages.create_async(agent_id=agent.id, input="go")
    done = wait_for_run(client, run.id, timeout=30)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    (ret,) = _returns(client, run.id)
    assert ret.status == "error" and "ValueError: no such city" in ret.tool_return
    assert any("no such city" in line for line in ret.stderr or [])
    assert "ValueError" in fake_llm.requests(model)[1]["messages"][-1]["content"]


def test_runaway_tool_is_killed_while_other_runs_continue(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    srv = fresh_server(tool_timeout_s=2.0)
    client = srv.client()
    spin = _tool(client, "    while True:\n        pass")
    slow_agent = client.agents.create(model=handle, tools=[spin])
    other_model = f"{model}-other"
    other_agent = client.agents.create(model=f"openai/{other_model}")
    fake_llm.script(model, ToolCall(spin, {}), Text("gave up"))
    stuck = client.agents.messages.create_async(agent_id=slow_agent.id, input="spin")
    wait_for_run(client, stuck.id, statuses=("running",))
    fake_llm.script(other_model, Text("still here"))
    other = client.agents.messages.create_async(agent_id=other_agent.id, input="hello")
    done_other = wait_for_run(client, other.id)
    assert done_other.status == "completed"
    assert client.runs.retrieve(stuck.id).status == "running"  # the spinning tool is still being waited on
    done = wait_for_run(client, stuck.id, timeout=30)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    (ret,) = _returns(client, stuck.id)
    assert ret.status == "error" and "killed" in ret.tool_return


def test_memory_hog_is_stopped(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    srv = fresh_server(tool_memory_mb=256)
    client = srv.client()
    hog = _tool(client, "    chunks = []\n    while True:\n        chunks.append(bytearray(50_000_000))")
    agent = client.agents.create(model=handle, tools=[hog])
    fake_llm.script(model, ToolCall(hog, {}), Text("ok"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="eat")
    done = wait_for_run(client, run.id, timeout=60)
    assert done.status == "completed"
    (ret,) = _returns(client, run.id)
    assert ret.status == "error" and "MemoryError" in ret.tool_return


def test_tool_sees_its_agent_env_but_not_the_servers_secrets(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in this process: anything in os.environ here is the server's environment.
    monkeypatch.setenv("AGENTHOST_TEST_SECRET", "server-secret-value")
    client = server.client()
    name = _tool(client, "    return json.dumps(dict(os.environ))")
    agent = client.agents.create(
        model=handle, tools=[name], tool_exec_environment_variables={"WEATHER_KEY": "agent-key"}
    )
    fake_llm.script(model, ToolCall(name, {}), Text("ok"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="env?")
    wait_for_run(client, run.id, timeout=30)
    (ret,) = _returns(client, run.id)
    env = json.loads(ret.tool_return)
    assert env["WEATHER_KEY"] == "agent-key"
    assert "server-secret-value" not in ret.tool_return
    assert not any(k.startswith(("AGENTHOST_", "OPENAI_", "LETTA_")) for k in env)


def test_parallel_tools_run_at_the_same_time(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    # Each tool marks its start, then waits (up to 10 s) for the other's mark: run one after the
    # other, the first would give up and say so.
    body = (
        "    open(os.path.join(os.environ['MEET_DIR'], me), 'w').close()\n"
        "    deadline = time.time() + 10\n"
        "    while time.time() < deadline:\n"
        "        if os.path.exists(os.path.join(os.environ['MEET_DIR'], other)):\n"
        "            return 'met ' + other\n"
        "        time.sleep(0.01)\n"
        "    return 'alone'"
    )
    params, doc = "me: str, other: str", "        me: My mark.\n        other: The other mark."
    a = _tool(client, body, params=params, args_doc=doc, enable_parallel_execution=True)
    b = _tool(client, body, params=params, args_doc=doc, enable_parallel_execution=True)
    agent = client.agents.create(
        model=handle, tools=[a, b], tool_exec_environment_variables={"MEET_DIR": str(tmp_path)}
    )
    fake_llm.script(
        model,
        ToolCalls([ToolCall(a, {"me": "a", "other": "b"}), ToolCall(b, {"me": "b", "other": "a"})]),
        Text("done"),
    )
    run = client.agents.messages.create_async(agent_id=agent.id, input="meet")
    wait_for_run(client, run.id, timeout=30)
    returns = _returns(client, run.id)
    assert [(r.name, r.tool_return) for r in returns] == [(a, "met b"), (b, "met a")]


def test_run_a_tool_directly(server: ThreadServer, handle: str) -> None:
    client = server.client()
    name = _tool(
        client,
        "    print('adding')\n    return a + b",
        params="a: int, b: int",
        args_doc="        a: First.\n        b: Second.",
    )
    agent = client.agents.create(model=handle, tools=[name], memory_blocks=[{"label": "notes", "value": ""}])
    result = client.agents.tools.run(name, agent_id=agent.id, args={"a": 2, "b": 3})
    assert (result.status, result.func_return, result.stdout) == ("success", "5", ["adding\n"])
    bad = client.agents.tools.run(name, agent_id=agent.id, args={"a": 2})
    assert bad.status == "error" and "b" in str(bad.func_return)
    edited = client.agents.tools.run(
        "memory_insert", agent_id=agent.id, args={"label": "notes", "new_str": "likes tea"}
    )
    assert edited.status == "success"
    assert client.agents.blocks.retrieve("notes", agent_id=agent.id).value == "likes tea"
