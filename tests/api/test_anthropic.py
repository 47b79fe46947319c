"""Agents on Anthropic models (``anthropic/...`` handles), through the letta-client SDK, against a server
whose Anthropic provider talks to the fake Messages API.

The fake refuses requests the real API would refuse (roles, tool pairing, thinking signatures, image
sources), so every test also asserts that nothing was refused.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from letta_client import Letta
from letta_client.types.agents import HiddenReasoningMessage, ReasoningMessage
from tests.fakes.fake_anthropic import (
    Error,
    FakeAnthropic,
    Message,
    RedactedThinking,
    Text,
    Thinking,
    ToolUse,
)
from tests.fakes.fake_llm import FakeLLM, ToolCall
from tests.fakes.fake_llm import Text as OpenAIText
from tests.support import CALCULATOR, ThreadServer, unique_model, wait_for_run

PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def server_with_anthropic(
    fresh_server: Callable[..., ThreadServer], fake_anthropic: FakeAnthropic
) -> Callable[..., ThreadServer]:
    def start(**overrides: Any) -> ThreadServer:
        return fresh_server(anthropic_api_key="test", anthropic_base_url=fake_anthropic.base_url, **overrides)

    return start


@pytest.fixture
def client(server_with_anthropic: Callable[..., ThreadServer]) -> Letta:
    return server_with_anthropic().client()


def claude(thinking: bool) -> str:
    """A model name of the test's own, of a family with (or without) extended thinking."""
    family = "claude-sonnet-4-5" if thinking else "claude-3-5-haiku"
    return f"{family}-{unique_model()}"


def memory_agent(client: Letta, model: str, name: str) -> str:
    agent = client.agents.create(
        name=name, model=f"anthropic/{model}", memory_blocks=[{"label": "human", "value": "Name: Ada"}]
    )
    return agent.id


def run_messages(client: Letta, run_id: str) -> list[Any]:
    return list(client.runs.messages.list(run_id).items)


def test_plain_answer(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    model = claude(thinking=False)
    agent_id = memory_agent(client, model, "claude-plain")
    fake_anthropic.script(model, Message([Text("Hello from Claude.")], input_tokens=42, output_tokens=7))
    response = client.agents.messages.create(agent_id, input="hi")
    assert [(m.message_type, getattr(m, "content", None)) for m in response.messages] == [
        ("assistant_message", "Hello from Claude.")
    ]
    assert response.stop_reason.stop_reason == "end_turn"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (42, 7)

    assert fake_anthropic.rejections(model) == []
    (request,) = fake_anthropic.requests(model)
    assert request["model"] == model
    assert "Name: Ada" in request["system"]
    assert request["messages"][-1] == {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    assert "thinking" not in request
    assert {"memory_insert", "memory_replace"} <= {t["name"] for t in request["tools"]}
    assert all(t["input_schema"]["type"] == "object" for t in request["tools"])
    (step,) = client.runs.steps.list(response.messages[0].run_id or "").items
    assert (step.model, step.provider_name) == (model, "anthropic")


def test_tool_call_round_trip(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    model = claude(thinking=False)
    agent_id = memory_agent(client, model, "claude-tools")
    call = ToolUse("memory_insert", {"label": "human", "new_str": "Likes cats.", "insert_line": -1})
    fake_anthropic.script(model, Message([Text("Noting that."), call]), Text("Noted."))
    run = client.agents.messages.create_async(agent_id=agent_id, input="I like cats")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert [m.message_type for m in run_messages(client, run.id)] == [
        "user_message",
        "assistant_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    block = client.agents.blocks.retrieve("human", agent_id=agent_id)
    assert "Likes cats." in block.value

    assert fake_anthropic.rejections(model) == []
    _, second = fake_anthropic.requests(model)
    assistant, results = second["messages"][-2:]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Noting that."},
            {"type": "tool_use", "id": call.id, "name": "memory_insert", "input": call.input},
        ],
    }
    assert results["role"] == "user"
    (result,) = results["content"]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", call.id)
    assert result["content"]


def test_signed_thinking_is_kept_and_sent_back(
    server_with_anthropic: Callable[..., ThreadServer], fake_anthropic: FakeAnthropic
) -> None:
    client = server_with_anthropic(thinking_budget_tokens=2048).client()
    model = claude(thinking=True)
    agent_id = memory_agent(client, model, "claude-thinks")
    call = ToolUse("memory_insert", {"label": "human", "new_str": "Likes owls."})
    fake_anthropic.script(
        model,
        Message([Thinking("Worth remembering."), call]),
        Message([Thinking("Now reply."), Text("Noted.")]),
    )
    run = client.agents.messages.create_async(agent_id=agent_id, input="I like owls")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")

    reasoning = [m for m in run_messages(client, run.id) if isinstance(m, ReasoningMessage)]
    assert [(m.reasoning, m.signature) for m in reasoning] == [
        ("Worth remembering.", fake_anthropic.signature("Worth remembering.")),
        ("Now reply.", fake_anthropic.signature("Now reply.")),
    ]
    assert fake_anthropic.rejections(model) == []
    first, second = fake_anthropic.requests(model)
    assert first["thinking"] == second["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert first["max_tokens"] > 2048
    # The assistant turn holding the tool call starts with its signed thinking block, unchanged.
    assert second["messages"][-2]["content"][0] == {
        "type": "thinking",
        "thinking": "Worth remembering.",
        "signature": fake_anthropic.signature("Worth remembering."),
    }

    # The stored reasoning reaches the next run too (read back from the database).
    fake_anthropic.script(model, Text("Still here."))
    client.agents.messages.create(agent_id, input="and now?")
    third = fake_anthropic.requests(model)[2]
    assert fake_anthropic.rejections(model) == []
    thinking_blocks = [b for m in third["messages"] for b in m["content"] if b["type"] == "thinking"]
    assert [b["thinking"] for b in thinking_blocks] == ["Worth remembering.", "Now reply."]


def test_client_tool_with_thinking_resumes_in_a_new_run(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    """The signed thinking of a paused turn is read back from the database when the client answers."""
    model = claude(thinking=True)
    agent_id = memory_agent(client, model, "claude-client-tool")
    call = ToolUse("calculator", {"expression": "6*7"})
    fake_anthropic.script(model, Message([Thinking("Use the calculator."), call]), Text("It is 42."))
    paused = client.agents.messages.create_async(agent_id=agent_id, input="6*7?", client_tools=[CALCULATOR])
    assert wait_for_run(client, paused.id).stop_reason == "requires_approval"
    tool_return: Any = {"tool_call_id": call.id, "status": "success", "tool_return": "42"}
    run = client.agents.messages.create_async(
        agent_id=agent_id,
        messages=[{"type": "tool_return", "tool_returns": [tool_return]}],
        client_tools=[CALCULATOR],
    )
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert fake_anthropic.rejections(model) == []
    second = fake_anthropic.requests(model)[1]
    assert "thinking" in second
    assert second["messages"][-2]["content"] == [
        {
            "type": "thinking",
            "thinking": "Use the calculator.",
            "signature": fake_anthropic.signature("Use the calculator."),
        },
        {"type": "tool_use", "id": call.id, "name": "calculator", "input": {"expression": "6*7"}},
    ]
    assert second["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": "42"}
    ]


def test_redacted_thinking_becomes_hidden_reasoning(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    model = claude(thinking=True)
    agent_id = memory_agent(client, model, "claude-redacted")
    hidden = RedactedThinking()
    call = ToolUse("memory_insert", {"label": "human", "new_str": "Private."})
    fake_anthropic.script(model, Message([hidden, call]), Text("Done."))
    run = client.agents.messages.create_async(agent_id=agent_id, input="remember this")
    assert wait_for_run(client, run.id).status == "completed"
    (message,) = [m for m in run_messages(client, run.id) if isinstance(m, HiddenReasoningMessage)]
    assert (message.state, message.hidden_reasoning) == ("redacted", hidden.data)
    assert fake_anthropic.rejections(model) == []
    second = fake_anthropic.requests(model)[1]
    assert second["messages"][-2]["content"][0] == {"type": "redacted_thinking", "data": hidden.data}


def test_enable_thinking_false_sends_no_thinking(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    model = claude(thinking=True)
    agent_id = memory_agent(client, model, "claude-no-thinking")
    fake_anthropic.script(model, Message([Thinking("dropped by the API"), Text("Plain.")]))
    response = client.agents.messages.create(agent_id, input="hi", enable_thinking="false")
    assert [m.message_type for m in response.messages] == ["assistant_message"]
    (request,) = fake_anthropic.requests(model)
    assert "thinking" not in request


def test_image_reaches_the_api_as_a_base64_block(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    model = claude(thinking=False)
    agent_id = memory_agent(client, model, "claude-image")
    parts: list[Any] = [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]
    run = client.agents.messages.create_async(agent_id=agent_id, input=parts)
    assert wait_for_run(client, run.id).status == "completed"
    assert fake_anthropic.rejections(model) == []
    (request,) = fake_anthropic.requests(model)
    assert request["messages"][-1]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]


def test_override_model_moves_an_openai_conversation_to_claude(
    client: Letta, fake_anthropic: FakeAnthropic, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    agent = client.agents.create(
        name="openai-then-claude", model=handle, memory_blocks=[{"label": "human", "value": "Name: Ada"}]
    )
    call = ToolCall("memory_insert", {"label": "human", "new_str": "Likes tea."})
    fake_llm.script(model, call, OpenAIText("Noted."))
    first = client.agents.messages.create_async(agent_id=agent.id, input="I like tea")
    assert wait_for_run(client, first.id).status == "completed"

    other = claude(thinking=True)
    fake_anthropic.script(other, Message([Thinking("The user likes tea."), Text("Tea it is.")]))
    run = client.agents.messages.create_async(
        agent_id=agent.id, input="what do I like?", override_model=f"anthropic/{other}"
    )
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert len(fake_llm.requests(model)) == 2
    assert fake_anthropic.rejections(other) == []
    (request,) = fake_anthropic.requests(other)
    # The OpenAI tool call and its result, as Anthropic blocks; thinking is on for the new turn.
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert request["messages"][1]["content"][-1] == {
        "type": "tool_use",
        "id": call.id,
        "name": "memory_insert",
        "input": call.arguments,
    }
    assert request["messages"][2]["content"][0]["tool_use_id"] == call.id
    assert request["thinking"]["type"] == "enabled"
    (step,) = client.runs.steps.list(run.id).items
    assert (step.model, step.provider_name) == (other, "anthropic")
    assert client.agents.retrieve(agent.id).model == handle


def test_overloaded_is_retried_until_the_answer(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    model = claude(thinking=False)
    agent_id = memory_agent(client, model, "claude-overloaded")
    fake_anthropic.script(model, Error(529, "Overloaded"), Error(529, "Overloaded"), Text("Finally."))
    run = client.agents.messages.create_async(agent_id=agent_id, input="hi")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert len(fake_anthropic.requests(model)) == 3
    assert [m.message_type for m in run_messages(client, run.id)] == ["user_message", "assistant_message"]
    assert len(client.runs.steps.list(run.id).items) == 1


def test_a_provider_400_fails_the_run(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    model = claude(thinking=False)
    agent_id = memory_agent(client, model, "claude-400")
    fake_anthropic.script(model, Error(400, "prompt is too long: 210000 tokens > 200000 maximum"))
    run = client.agents.messages.create_async(agent_id=agent_id, input="hi")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("failed", "llm_api_error")
    error = str((done.metadata or {}).get("error"))
    assert "HTTP 400" in error and "prompt is too long" in error
    assert len(fake_anthropic.requests(model)) == 1


def test_models_list_anthropic_handles(client: Letta, fake_anthropic: FakeAnthropic) -> None:
    by_handle = {m.handle: m for m in client.models.list()}
    for name in fake_anthropic.models:
        entry = by_handle[f"anthropic/{name}"]
        assert (entry.provider_name, entry.provider_type) == ("anthropic", "anthropic")
        assert entry.context_window == 200_000


def test_stream_tokens_streams_thinking_and_text_and_keeps_the_signed_blocks(
    server_with_anthropic: Callable[..., ThreadServer], fake_anthropic: FakeAnthropic
) -> None:
    client = server_with_anthropic(thinking_budget_tokens=2048).client()
    model = claude(thinking=True)
    agent_id = memory_agent(client, model, "claude-streams")
    call = ToolUse("memory_insert", {"label": "human", "new_str": "Likes owls."})
    fake_anthropic.script(
        model,
        Message([RedactedThinking("opaque"), Thinking("Worth remembering this."), call]),
        Message([Thinking("Now reply."), Text("Noted, owls it is.")]),
    )
    got = list(
        client.agents.messages.create(agent_id, input="I like owls", streaming=True, stream_tokens=True)
    )
    assert all(r["stream"] is True for r in fake_anthropic.requests(model))
    assert fake_anthropic.rejections(model) == []
    kinds = [e.message_type for e in got]
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert collapsed == [
        "reasoning_message",  # deltas of the signed thinking block (the redacted one comes whole)
        "hidden_reasoning_message",
        "tool_call_message",
        "tool_return_message",
        "reasoning_message",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
    ]
    assert kinds.count("reasoning_message") == 3 + 2 and kinds.count("assistant_message") == 4
    # The committed messages keep the deltas' ids, and the whole signed thinking.
    stored = {m.id: m for m in run_messages(client, got[0].run_id)}  # type: ignore[union-attr]
    text: dict[str, str] = {}
    for e in got:
        if isinstance(e, ReasoningMessage):
            text[e.id] = text.get(e.id, "") + e.reasoning
    assert [(stored[i].reasoning, stored[i].signature) for i in text] == [  # type: ignore[union-attr]
        (t, fake_anthropic.signature(t)) for t in ("Worth remembering this.", "Now reply.")
    ]
    assert list(text.values()) == ["Worth remembering this.", "Now reply."]
    # The signed block goes back to the API unchanged.
    second = fake_anthropic.requests(model)[1]
    assert second["messages"][-2]["content"][1]["signature"] == fake_anthropic.signature(
        "Worth remembering this."
    )
