"""Streams follow a run live wherever it executes: on the distributed engine the API server that serves
the stream is not the worker that runs it, and PostgreSQL's notifications carry the wake-ups."""

from __future__ import annotations

import time

from tests.contract.conftest import Engine
from tests.fakes.fake_llm import Delay, FakeLLM, Paced, Text, ToolCall
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


def test_token_deltas_reach_a_stream_served_by_another_process_while_the_llm_answers(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="stream-tokens", model=handle)
    words = " ".join(f"w{i}" for i in range(30))
    fake_llm.script(model, Paced(0.05, Text(words)))
    stream = client.agents.messages.create(
        agent.id, input="hi", streaming=True, stream_tokens=True, background=True, include_pings=False
    )
    events = iter(stream)
    first = next(events)
    # The first delta comes while the provider is still sending the rest (30 tokens, 50 ms apart).
    assert first.message_type == "assistant_message"
    assert client.runs.retrieve(first.run_id).status == "running"  # type: ignore[union-attr, arg-type]
    stream.close()
    # Resumed from that delta with a poll interval far beyond the wait: wake-ups carry it.
    began = time.monotonic()
    rest = list(
        client.runs.messages.stream(
            first.run_id,  # type: ignore[union-attr, arg-type]
            starting_after=first.seq_id,  # type: ignore[union-attr]
            poll_interval=POLL_INTERVAL_S,
            include_pings=False,
        )
    )
    assert time.monotonic() - began < WITHIN_S
    text = "".join(e.content for e in [first, *rest] if e.message_type == "assistant_message")  # type: ignore[union-attr]
    assert text == words
    assert [e.message_type for e in rest[-2:]] == ["stop_reason", "usage_statistics"]
