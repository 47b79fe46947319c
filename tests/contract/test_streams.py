"""Streams follow a run live wherever it executes: on the distributed engine the API server that serves
the stream is not the worker that runs it, and PostgreSQL's notifications carry the wake-ups."""

from __future__ import annotations

import time

from tests.contract.conftest import Engine
from tests.fakes.fake_llm import Delay, FakeLLM, Text, ToolCall
from tests.support import TOOL_STEP_THEN_ANSWER

# Far longer than the test waits: only a wake-up from the run's commits can deliver events in time.
POLL_INTERVAL_S = 30.0
WITHIN_S = 10.0


def test_a_stream_follows_a_run_executing_elsewhere_without_polling(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="stream-follow", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Delay(0.3, Text("there")))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    began = time.monotonic()
    stream = client.runs.messages.stream(run.id, poll_interval=POLL_INTERVAL_S, include_pings=False)
    kinds = [e.message_type for e in stream]
    assert time.monotonic() - began < WITHIN_S
    assert kinds == TOOL_STEP_THEN_ANSWER
