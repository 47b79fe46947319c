"""A first end-to-end pass through the SDK: agent, async message, run, messages."""

from __future__ import annotations

from tests.fakes.fake_llm import FakeLLM, Text
from tests.support import ThreadServer, wait_for_run


def test_async_message_completes(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="smoke", model=handle)
    fake_llm.script(model, Text("hello there"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    assert run.status == "created"
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    messages = client.runs.messages.list(run.id)
    assert [m.message_type for m in messages] == ["user_message", "assistant_message"]
