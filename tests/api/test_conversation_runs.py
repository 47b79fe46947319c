"""Runs in conversations: each conversation of an agent has its own history and its own queue (one run
at a time, in order); conversations of one agent run in parallel; shared memory blocks lose no edit;
cancel, delete and approvals stay within their conversation. Real SDK, real HTTP, both databases."""

from __future__ import annotations

from typing import Any

import httpx
from letta_client import Letta
from tests.fakes.fake_llm import Delay, Echo, FakeLLM, Hang, Text, ToolCall
from tests.support import CALCULATOR, ThreadServer, api_error, request_texts, wait_for_run


def send_async(client: Letta, agent_id: str, conversation_id: str, text: str) -> str:
    """create_async in a conversation (the SDK's agent call has no argument for it: extra_body)."""
    run = client.agents.messages.create_async(
        agent_id=agent_id, input=text, extra_body={"conversation_id": conversation_id}
    )
    assert run.conversation_id == conversation_id
    return run.id


def say(client: Letta, conversation_id: str, text: str, **kwargs: Any) -> list[Any]:
    """Send a message to a conversation and read its whole stream (the SDK always streams this call)."""
    return list(client.conversations.messages.create(conversation_id, input=text, **kwargs))


def user_texts(client: Letta, conversation_id: str) -> list[str]:
    listed = client.conversations.messages.list(conversation_id, order="asc")
    return [m.content for m in listed if m.message_type == "user_message"]  # type: ignore[union-attr]


def test_each_conversation_keeps_its_own_history(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="conv-history", model=handle)
    first = client.conversations.create(agent_id=agent.id, summary="first")
    second = client.conversations.create(agent_id=agent.id, summary="second")
    fake_llm.set_default(model, Echo())
    answer = say(client, first.id, "apples")
    assert [e.message_type for e in answer] == ["assistant_message", "stop_reason", "usage_statistics"]
    say(client, second.id, "pears")
    client.agents.messages.create(agent.id, input="plums")

    # Each LLM call saw its own thread only.
    prompts = [request_texts(body, "user") for body in fake_llm.requests(model)]
    assert prompts == [["apples"], ["pears"], ["plums"]]
    fake_llm.script(model, Text("ok"))
    say(client, first.id, "again")
    assert request_texts(fake_llm.requests(model)[-1], "user") == ["apples", "again"]
    assert user_texts(client, first.id) == ["apples", "again"]
    assert user_texts(client, second.id) == ["pears"]
    runs = list(client.runs.list(conversation_id=first.id))
    assert len(runs) == 2 and {r.conversation_id for r in runs} == {first.id}


def test_conversation_messages_stream_by_default_and_resume(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="conv-stream", model=handle)
    conv = client.conversations.create(agent_id=agent.id)
    fake_llm.script(model, Text("streamed"))
    got = list(client.conversations.messages.create(conv.id, input="hi"))
    assert [e.message_type for e in got] == ["assistant_message", "stop_reason", "usage_statistics"]
    # The conversation's latest run, replayed.
    again = list(client.conversations.messages.stream(conv.id))
    assert [getattr(e, "id", e.message_type) for e in again] == [
        getattr(e, "id", e.message_type) for e in got
    ]


def test_two_conversations_run_at_once_while_each_stays_in_order(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="conv-parallel", model=handle)
    slow = client.conversations.create(agent_id=agent.id)
    fast = client.conversations.create(agent_id=agent.id)
    fake_llm.script(model, Delay(1.5, Text("slow answer")))
    fake_llm.set_default(model, Echo())
    slow_runs = [send_async(client, agent.id, slow.id, "slow 0")]
    fake_llm.wait_for_requests(model, 1)
    slow_runs += [send_async(client, agent.id, slow.id, f"slow {i}") for i in range(1, 4)]
    fast_runs = [send_async(client, agent.id, fast.id, f"fast {i}") for i in range(4)]

    # The other conversation's runs all finish while the first run of this one still waits on its LLM.
    for run_id in fast_runs:
        assert wait_for_run(client, run_id).status == "completed"
    assert client.runs.retrieve(slow_runs[0]).status == "running"
    assert all(client.runs.retrieve(r).status == "created" for r in slow_runs[1:])

    done = [wait_for_run(client, r) for r in slow_runs]
    assert all(r.status == "completed" for r in done)
    ends = [r.completed_at for r in done]
    assert ends == sorted(ends)
    assert user_texts(client, slow.id) == [f"slow {i}" for i in range(4)]
    assert user_texts(client, fast.id) == [f"fast {i}" for i in range(4)]
    answers = [
        m.content  # type: ignore[union-attr]
        for m in client.conversations.messages.list(fast.id, order="asc")
        if m.message_type == "assistant_message"
    ]
    assert answers == [f"echo: fast {i}" for i in range(4)]


def test_concurrent_edits_of_a_shared_block_from_parallel_conversations_are_all_kept(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(
        name="conv-blocks", model=handle, memory_blocks=[{"label": "notes", "value": "start", "limit": 5000}]
    )
    n = 6
    conversations = [client.conversations.create(agent_id=agent.id) for _ in range(n)]
    # Every run reads the block, then waits on its LLM long enough for all the others to have read it
    # too, then inserts its own line: each commit meets a block another run has changed since it read it.
    for i in range(n):
        fake_llm.script(
            model, Delay(0.8, ToolCall("memory_insert", {"label": "notes", "new_str": f"line {i}"}))
        )
    fake_llm.set_default(model, Text("noted"))
    runs = [send_async(client, agent.id, c.id, f"remember {i}") for i, c in enumerate(conversations)]
    for run_id in runs:
        assert wait_for_run(client, run_id, timeout=30).status == "completed"
    block = client.agents.blocks.retrieve("notes", agent_id=agent.id)
    lines = block.value.split("\n")
    assert lines[0] == "start"
    assert sorted(lines[1:]) == sorted(f"line {i}" for i in range(n))


def test_cancel_reaches_only_the_named_conversation(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="conv-cancel", model=handle)
    one = client.conversations.create(agent_id=agent.id)
    two = client.conversations.create(agent_id=agent.id)
    fake_llm.set_default(model, Hang())
    first = send_async(client, agent.id, one.id, "a")
    second = send_async(client, agent.id, two.id, "b")
    for run_id in (first, second):
        wait_for_run(client, run_id, statuses=("running",))
    assert client.conversations.cancel(one.id) == {first: "cancelled"}
    assert wait_for_run(client, first).status == "cancelled"
    assert client.runs.retrieve(second).status == "running"
    # Deleting a conversation cancels its live runs first.
    client.conversations.delete(two.id)
    assert wait_for_run(client, second).status == "cancelled"
    api_error(lambda: client.conversations.retrieve(two.id), 404)


def test_a_pending_approval_blocks_only_its_own_conversation(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="conv-approval", model=handle)
    waiting = client.conversations.create(agent_id=agent.id)
    free = client.conversations.create(agent_id=agent.id)
    fake_llm.script(model, ToolCall("calculator", {"expression": "1+1"}))
    paused = say(client, waiting.id, "compute", client_tools=[CALCULATOR])
    assert paused[-2].stop_reason == "requires_approval"
    body = api_error(lambda: say(client, waiting.id, "hello?"), 409)
    assert waiting.id in str(body)
    fake_llm.script(model, Text("free to talk"))
    other = say(client, free.id, "hello")
    assert other[0].content == "free to talk"
    assert client.agents.messages.create(agent.id, input="and here").stop_reason.stop_reason == "end_turn"


def test_compact_and_recompile_a_conversation(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(
        name="conv-compact", model=handle, memory_blocks=[{"label": "persona", "value": "I am careful."}]
    )
    conv = client.conversations.create(agent_id=agent.id)
    fake_llm.set_default(model, Echo())
    for i in range(6):
        say(client, conv.id, f"message {i}")
    fake_llm.script(model, Text("the summary of it all"))
    compacted = client.conversations.messages.compact(conv.id)
    assert compacted.summary == "the summary of it all"
    assert compacted.num_messages_after < compacted.num_messages_before
    # The next call in the conversation starts from its summary; the agent's default thread is untouched.
    say(client, conv.id, "next")
    prompt = fake_llm.requests(model)[-1]["messages"]
    assert any("the summary of it all" in str(m.get("content")) for m in prompt)
    client.agents.messages.create(agent.id, input="default thread")
    assert all(
        "summary of it all" not in str(m.get("content")) for m in fake_llm.requests(model)[-1]["messages"]
    )
    prompt_text = client.conversations.recompile(conv.id)
    assert "I am careful." in prompt_text


def test_unknown_or_foreign_conversations_are_refused(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="conv-refuse", model=handle)
    other = client.agents.create(name="conv-refuse-other", model=handle)
    conv = client.conversations.create(agent_id=other.id)
    missing = "conv-00000000-0000-4000-8000-000000000000"
    api_error(lambda: say(client, missing, "x"), 404)
    body = api_error(lambda: send_async(client, agent.id, conv.id, "x"), 404)
    assert conv.id in body["detail"]
    api_error(lambda: send_async(client, agent.id, "conv-nope", "x"), 422)
    api_error(lambda: list(client.conversations.messages.stream(conv.id)), 404)


def test_streaming_false_answers_with_the_whole_response(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    # The SDK reads this call as a stream whatever it sends, so the JSON answer is checked over raw HTTP.
    client = server.client()
    agent = client.agents.create(name="conv-json", model=handle)
    conv = client.conversations.create(agent_id=agent.id)
    fake_llm.script(model, Text("whole"))
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        response = http.post(
            f"/v1/conversations/{conv.id}/messages", json={"input": "hi", "streaming": False}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [m["content"] for m in body["messages"]] == ["whole"]
    assert body["stop_reason"]["stop_reason"] == "end_turn"


def test_a_conversation_model_overrides_the_agents(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="conv-model", model=handle)
    own_model = f"{model}-conv"
    conv = client.conversations.create(agent_id=agent.id, model=f"openai/{own_model}")
    fake_llm.script(own_model, Text("from the conversation's model"))
    fake_llm.script(model, Text("from the agent's model"))
    assert say(client, conv.id, "hi")[0].content == "from the conversation's model"
    assert client.agents.messages.create(agent.id, input="hi").messages[0].content == "from the agent's model"  # type: ignore[union-attr]
    assert len(fake_llm.requests(own_model)) == 1 and len(fake_llm.requests(model)) == 1
