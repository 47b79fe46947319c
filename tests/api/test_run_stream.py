"""runs.messages.stream: a run's events replayed from what it committed, then followed live until it
ends, with the real SDK over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.fakes.fake_llm import Delay, FakeLLM, Text, ToolCall
from tests.support import TOOL_STEP_THEN_ANSWER, ThreadServer, api_error, wait_for_run


def events(stream: Any) -> list[Any]:
    return list(stream)


def test_a_completed_async_run_streams_from_its_start(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="stream-done", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "nothing"}), Text("all done"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    assert wait_for_run(client, run.id).status == "completed"

    got = events(client.runs.messages.stream(run.id))
    kinds = [e.message_type for e in got]
    assert kinds == TOOL_STEP_THEN_ANSWER
    assert got[2].content == "all done"  # type: ignore[union-attr]
    assert got[3].stop_reason == "end_turn"  # type: ignore[union-attr]
    assert got[4].step_count == 2 and got[4].run_ids == [run.id]  # type: ignore[union-attr]
    # The same events as the run's own message list, in the same order.
    listed = [m.id for m in client.runs.messages.list(run.id) if m.message_type != "user_message"]
    assert [e.id for e in got[:3]] == listed  # type: ignore[union-attr]


def test_starting_after_yields_exactly_the_events_after_the_cursor(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="stream-cursor", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Text("end"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    wait_for_run(client, run.id)
    everything = events(client.runs.messages.stream(run.id))
    first = everything[0]
    rest = events(client.runs.messages.stream(run.id, starting_after=first.seq_id))  # type: ignore[union-attr]
    assert [getattr(e, "id", e.message_type) for e in rest] == [
        getattr(e, "id", e.message_type) for e in everything[1:]
    ]


def test_a_running_run_is_followed_live_until_it_ends(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="stream-live", model=handle)
    # Two steps, the second one slow: the first step's events arrive while the run still runs.
    fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Delay(1.0, Text("late")))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    stream = client.runs.messages.stream(run.id, poll_interval=0.02)
    first = next(iter(stream))
    assert first.message_type == "tool_call_message"
    assert client.runs.retrieve(run.id).status == "running"
    rest = [e.message_type for e in stream]
    assert rest == ["tool_return_message", "assistant_message", "stop_reason", "usage_statistics"]


def test_streaming_an_unknown_run_is_a_404(server: ThreadServer) -> None:
    client = server.client()
    body = api_error(
        lambda: events(client.runs.messages.stream("run-00000000-0000-4000-8000-000000000000")), 404
    )
    assert "not found" in body["detail"]


def test_a_quiet_run_sends_pings_unless_asked_not_to(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = fresh_server(stream_ping_interval_s=0.1).client()
    agent = client.agents.create(name="stream-pings", model=handle)
    fake_llm.script(model, Delay(0.6, Text("slow")), Delay(0.6, Text("slow again")))
    first = client.agents.messages.create_async(agent_id=agent.id, input="one")
    kinds = [e.message_type for e in client.runs.messages.stream(first.id, poll_interval=0.02)]
    assert kinds[0] == "ping" and kinds.count("ping") >= 2
    assert [k for k in kinds if k != "ping"] == ["assistant_message", "stop_reason", "usage_statistics"]

    second = client.agents.messages.create_async(agent_id=agent.id, input="two")
    quiet = client.runs.messages.stream(second.id, poll_interval=0.02, include_pings=False)
    assert [e.message_type for e in quiet] == ["assistant_message", "stop_reason", "usage_statistics"]


def test_a_hundred_concurrent_streams_each_get_their_run_complete_and_in_order(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    agents_n, per_agent = 20, 5
    fake_llm.set_default(model, Delay(0.05, Text("answer")))

    async def main() -> None:
        client = server.async_client()
        agents = await asyncio.gather(
            *(client.agents.create(name=f"streams-{i}", model=handle) for i in range(agents_n))
        )
        runs = [
            await client.agents.messages.create_async(agent_id=a.id, input=f"{a.id} {j}")
            for j in range(per_agent)
            for a in agents
        ]

        async def follow(run_id: str) -> list[Any]:
            stream = await client.runs.messages.stream(run_id, poll_interval=0.05, include_pings=False)
            return [event async for event in stream]

        streamed = await asyncio.gather(*(follow(r.id) for r in runs))
        for run, got in zip(runs, streamed, strict=True):
            listed = [m async for m in client.runs.messages.list(run.id)]
            produced = [m.id for m in listed if m.message_type != "user_message"]
            assert [e.message_type for e in got[-2:]] == ["stop_reason", "usage_statistics"], run.id
            assert [e.id for e in got[:-2]] == produced, run.id
            assert all(e.run_id == run.id for e in got[:-2])

    asyncio.run(main())


def test_a_reconnect_mid_run_gets_exactly_the_missing_events(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="stream-reconnect", model=handle)
    fake_llm.script(
        model,
        ToolCall("conversation_search", {"query": "a"}),
        Delay(0.5, ToolCall("conversation_search", {"query": "b"})),
        Delay(0.5, Text("end")),
    )
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    stream = client.runs.messages.stream(run.id, poll_interval=0.02, include_pings=False)
    seen = []
    for event in stream:
        seen.append(event)
        if len(seen) == 2:  # the first step's call and return; the run goes on
            break
    stream.close()
    assert client.runs.retrieve(run.id).status == "running"

    cursor = seen[-1].seq_id  # type: ignore[union-attr]
    rest = list(client.runs.messages.stream(run.id, starting_after=cursor, poll_interval=0.02))
    rest = [e for e in rest if e.message_type != "ping"]
    whole = [getattr(e, "id", e.message_type) for e in client.runs.messages.stream(run.id)]
    assert [getattr(e, "id", e.message_type) for e in seen + rest] == whole
    assert [e.message_type for e in rest] == TOOL_STEP_THEN_ANSWER
