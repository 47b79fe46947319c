"""stream_tokens: the LLM is called with streaming and its text reaches the client as deltas while the
run is still running; the deltas are durable (``run_events``), so a reconnect resumes exactly."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fakes.fake_llm import Cut, Error, FakeLLM, Paced, Text, ToolCall, ToolCalls, fake_logprobs
from tests.support import ThreadServer

WORDS = " ".join(f"word{i}" for i in range(20))


def key(event: Any) -> tuple[Any, ...]:
    """What identifies an event on the wire (pings aside)."""
    return (event.message_type, getattr(event, "id", None), getattr(event, "seq_id", None))


def text_of(events: list[Any], message_type: str, field: str) -> dict[str, str]:
    """The text each message's deltas add up to, by message id."""
    out: dict[str, str] = {}
    for e in events:
        if e.message_type == message_type:
            out[e.id] = out.get(e.id, "") + getattr(e, field)
    return out


def test_token_deltas_arrive_before_the_run_completes(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="tokens-live", model=handle)
    answer = Text("the answer comes in pieces", reasoning_content="thinking it over")
    fake_llm.script(model, Paced(0.05, answer))
    stream = client.agents.messages.create(
        agent.id, input="hi", streaming=True, stream_tokens=True, include_pings=False
    )
    events = iter(stream)
    first = next(events)
    assert first.message_type == "reasoning_message"
    assert first.reasoning == "thinking"  # type: ignore[union-attr]
    run_id = first.run_id  # type: ignore[union-attr]
    assert run_id is not None and client.runs.retrieve(run_id).status == "running"
    got = [first, *events]

    kinds = [e.message_type for e in got]
    assert kinds[-2:] == ["stop_reason", "usage_statistics"]
    assert kinds.count("reasoning_message") == 3 and kinds.count("assistant_message") == 5
    # Each message's deltas carry the id the committed message has, and add up to its text.
    committed = {m.id: m for m in client.runs.messages.list(run_id) if m.message_type != "user_message"}
    assert text_of(got, "reasoning_message", "reasoning") == {
        i: m.reasoning
        for i, m in committed.items()
        if m.message_type == "reasoning_message"  # type: ignore[union-attr]
    }
    assert text_of(got, "assistant_message", "content") == {
        i: m.content
        for i, m in committed.items()
        if m.message_type == "assistant_message"  # type: ignore[union-attr]
    }
    seqs = [e.seq_id for e in got[:-2]]  # type: ignore[union-attr]
    assert seqs == sorted(set(seqs))
    # Usage from the provider's last chunk (stream_options.include_usage).
    assert (got[-1].prompt_tokens, got[-1].completion_tokens) == (10, 5)  # type: ignore[union-attr]
    body = fake_llm.requests(model)[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_without_stream_tokens_the_llm_is_not_streamed(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="tokens-off", model=handle)
    fake_llm.script(model, Text("whole"))
    kinds = [e.message_type for e in client.agents.messages.create(agent.id, input="hi", streaming=True)]
    assert kinds == ["assistant_message", "stop_reason", "usage_statistics"]
    assert "stream" not in fake_llm.requests(model)[0]


def test_a_reconnect_mid_deltas_gets_exactly_the_missing_events(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="tokens-resume", model=handle)
    fake_llm.script(model, Paced(0.05, Text(WORDS)))
    stream = client.agents.messages.create(
        agent.id, input="hi", streaming=True, stream_tokens=True, background=True, include_pings=False
    )
    seen = []
    for event in stream:
        seen.append(event)
        if len(seen) == 5:
            break
    stream.close()
    run_id = seen[0].run_id  # type: ignore[union-attr]
    assert client.runs.retrieve(run_id).status == "running"

    rest = list(client.runs.messages.stream(run_id, starting_after=seen[-1].seq_id, include_pings=False))  # type: ignore[union-attr]
    whole = list(client.runs.messages.stream(run_id))
    assert [key(e) for e in seen + rest] == [key(e) for e in whole]
    assert list(text_of(seen + rest, "assistant_message", "content").values()) == [WORDS]
    assert client.runs.retrieve(run_id).status == "completed"


def test_a_tool_step_streams_its_text_then_the_call_and_return(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="tokens-tool", model=handle)
    fake_llm.script(
        model,
        Paced(0.01, ToolCalls([ToolCall("conversation_search", {"query": "y"})], content="let me look")),
        Paced(0.01, Text("found nothing")),
    )
    got = list(client.agents.messages.create(agent.id, input="more", streaming=True, stream_tokens=True))
    kinds = [e.message_type for e in got]
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert collapsed == [
        "assistant_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
    ]
    assert list(text_of(got, "assistant_message", "content").values()) == ["let me look", "found nothing"]
    assert got[-1].step_count == 2  # type: ignore[union-attr]
    # Replayed later, the log is the same.
    replay = list(client.runs.messages.stream(got[0].run_id))  # type: ignore[union-attr]
    assert [key(e) for e in replay] == [key(e) for e in got]


def test_a_failed_llm_call_after_its_retries_ends_the_token_stream_with_its_reason(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="tokens-error", model=handle)
    fake_llm.script(model, Error(400, "no such thing"))
    got = list(client.agents.messages.create(agent.id, input="hi", streaming=True, stream_tokens=True))
    assert [e.message_type for e in got] == ["stop_reason", "usage_statistics"]
    assert got[0].stop_reason == "llm_api_error"  # type: ignore[union-attr]


def test_concurrent_token_streams_each_get_their_run_complete_and_in_order(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    n = 30
    fake_llm.set_default(model, Paced(0.01, Text("a b c d e f")))

    async def main() -> None:
        client = server.async_client()
        agents = await asyncio.gather(
            *(client.agents.create(name=f"tokens-{i}", model=handle) for i in range(n))
        )

        async def follow(agent_id: str) -> list[Any]:
            stream = await client.agents.messages.create(
                agent_id, input="go", streaming=True, stream_tokens=True, include_pings=False
            )
            return [event async for event in stream]

        streamed = await asyncio.gather(*(follow(a.id) for a in agents))
        for got in streamed:
            run_id = got[0].run_id
            assert [e.message_type for e in got[-2:]] == ["stop_reason", "usage_statistics"], run_id
            assert list(text_of(got, "assistant_message", "content").values()) == ["a b c d e f"], run_id
            assert all(e.run_id == run_id for e in got[:-2])
            replay = [key(e) async for e in await client.runs.messages.stream(run_id)]
            assert replay == [key(e) for e in got], run_id

    asyncio.run(main())


def test_an_answer_cut_mid_stream_is_retried_under_new_message_ids(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="tokens-cut", model=handle)
    # The role chunk, then two of the first answer's pieces; then the connection breaks.
    fake_llm.script(model, Cut(3, Text("one two three")), Paced(0.01, Text("second try")))
    got = list(client.agents.messages.create(agent.id, input="hi", streaming=True, stream_tokens=True))
    assert got[-2].stop_reason == "end_turn"  # type: ignore[union-attr]
    answers = text_of(got, "assistant_message", "content")
    # The unfinished answer stays in the log as it was sent; the retried one is the message kept.
    assert list(answers.values()) == ["one two", "second try"]
    stored = [m for m in client.runs.messages.list(got[0].run_id) if m.message_type == "assistant_message"]  # type: ignore[union-attr]
    assert [(m.id, m.content) for m in stored] == [(list(answers)[1], "second try")]  # type: ignore[union-attr]
    assert len(fake_llm.requests(model)) == 2


def test_a_token_streamed_run_keeps_the_streamed_logprobs(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="tokens-logprobs", model=handle)
    fake_llm.script(model, Text("The answer is 42"))
    got = list(
        client.agents.messages.create(
            agent.id, input="hi", streaming=True, stream_tokens=True, return_logprobs=True, top_logprobs=2
        )
    )
    run = client.runs.retrieve(got[0].run_id)  # type: ignore[union-attr, arg-type]
    assert run.metadata is not None and run.metadata["logprobs"] == fake_logprobs("The answer is 42", 2)
    assert fake_llm.requests(model)[0]["stream"] is True
