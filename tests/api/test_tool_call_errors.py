"""Bad tool calls from the LLM become error tool returns the LLM sees; the run goes on."""

from __future__ import annotations

from typing import Any

from tests.fakes.fake_llm import FakeLLM, Text, ToolCall, ToolCalls
from tests.support import ThreadServer, wait_for_run


def _tool_messages(fake_llm: FakeLLM, model: str) -> list[dict[str, Any]]:
    return [m for m in fake_llm.requests(model)[-1]["messages"] if m["role"] == "tool"]


def test_unknown_tool_and_missing_arguments(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(
        name="clumsy", model=handle, memory_blocks=[{"label": "human", "value": "x"}]
    )
    missing_args = ToolCall("memory_rethink", {})
    fake_llm.script(
        model,
        ToolCalls([ToolCall("launch_rockets", {"when": "now"}), missing_args]),
        Text("sorry"),
    )
    run = client.agents.messages.create_async(agent_id=agent.id, input="go")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    tool_messages = _tool_messages(fake_llm, model)
    assert len(tool_messages) == 2
    assert "'launch_rockets' does not exist" in tool_messages[0]["content"]
    assert "argument 'label'" in tool_messages[1]["content"]  # the missing argument is named
    returns = [m for m in client.runs.messages.list(run.id) if m.message_type == "tool_return_message"]
    assert [r.status for r in returns] == ["error", "error"]


def test_max_steps_one_stops_after_the_first_tool_round(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="bounded", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Text("never reached"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="go", max_steps=1)
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "max_steps")
    assert len(fake_llm.requests(model)) == 1
