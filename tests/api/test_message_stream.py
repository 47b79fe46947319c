"""agents.messages.stream: a durable run like any other, its events sent as each step commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from tests.fakes.fake_llm import Delay, FakeLLM, Text, ToolCall
from tests.support import ThreadServer, wait_for_run

# The SDK marks agents.messages.stream deprecated in favour of create(streaming=True); the route is
# still part of the API it calls, and both are tested.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")


def test_first_events_arrive_before_the_run_ends(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="stream-early", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Delay(1.0, Text("done")))
    stream = client.agents.messages.stream(agent.id, input="hi", include_pings=False)
    events = iter(stream)
    first = next(events)
    assert first.message_type == "tool_call_message"
    run_id = first.run_id  # type: ignore[union-attr]
    assert run_id is not None and client.runs.retrieve(run_id).status == "running"
    assert [e.message_type for e in events] == [
        "tool_return_message",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
    ]
    run = client.runs.retrieve(run_id)
    assert (run.status, run.background) == ("completed", False)


def test_a_background_stream_survives_its_client_going_away(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    # Even where foreground streams cancel their run on disconnect.
    client = fresh_server(stream_disconnect="cancel").client()
    agent = client.agents.create(name="stream-bg", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Delay(0.5, Text("finished")))
    stream = client.agents.messages.stream(agent.id, input="hi", background=True, include_pings=False)
    first = next(iter(stream))
    stream.close()
    run = wait_for_run(client, first.run_id)  # type: ignore[union-attr, arg-type]
    assert (run.status, run.background) == ("completed", True)
    # Its events can be streamed again, from the start, in full.
    replay = [e.message_type for e in client.runs.messages.stream(run.id)]
    assert replay[-3:] == ["assistant_message", "stop_reason", "usage_statistics"]


def test_a_foreground_stream_disconnect_goes_on_by_default_and_cancels_when_configured(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    for setting, expected in (
        ("continue", ("completed", "end_turn")),
        ("cancel", ("cancelled", "cancelled")),
    ):
        client = fresh_server(stream_disconnect=setting).client()
        agent = client.agents.create(name=f"stream-{setting}", model=handle)
        fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Delay(0.8, Text("finished")))
        stream = client.agents.messages.stream(agent.id, input="hi", include_pings=False)
        first = next(iter(stream))
        stream.close()
        run = wait_for_run(client, first.run_id, timeout=10)  # type: ignore[union-attr, arg-type]
        assert (run.status, run.stop_reason) == expected, setting


def test_an_otid_retry_attaches_to_the_existing_run(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="stream-otid", model=handle)
    fake_llm.script(model, Text("once"))
    message = {"role": "user", "content": "hello", "otid": f"otid-{uuid.uuid4()}"}
    first = list(client.agents.messages.stream(agent.id, messages=[message]))  # type: ignore[list-item]
    again = list(client.agents.messages.stream(agent.id, messages=[message]))  # type: ignore[list-item]
    assert [getattr(e, "id", e.message_type) for e in again] == [
        getattr(e, "id", e.message_type) for e in first
    ]
    assert len(fake_llm.requests(model)) == 1
    assert len(list(client.runs.list(agent_id=agent.id))) == 1
