"""``AnthropicClient`` against the fake Messages API over real HTTP: reasoning round trips, retries,
errors, token counts, model listing and cancellation."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.fakes.fake_anthropic import (
    Error,
    FakeAnthropic,
    Hang,
    Message,
    RedactedThinking,
    Text,
    Thinking,
    ToolUse,
)
from tests.support import free_port, unique_model

from agenthost.llm.anthropic import AnthropicClient
from agenthost.llm.base import LLMError, LLMRequest, LLMResponse, ToolSpec
from agenthost.llm.tokens import estimate_tokens

TOOLS = [
    ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {"word": {"type": "string"}}})
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[AnthropicClient]:
    llm = AnthropicClient(
        api_key="test",
        base_url=fake.base_url,
        models=["claude-sonnet-4-5"],
        timeout_s=10,
        max_retries=3,
        retry_base_delay_s=0.01,
    )
    yield llm
    await llm.close()


def thinking_model() -> str:
    # The fake serves any model name; a thinking family name keeps thinking on.
    return f"claude-sonnet-4-5-{unique_model()}"


def assistant_turn(response: LLMResponse) -> dict[str, Any]:
    """The neutral assistant message the loop keeps for a response (reasoning included)."""
    message: dict[str, Any] = {"role": "assistant", "content": response.content}
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in response.tool_calls
        ]
    message["reasoning"] = [
        {"redacted": r.redacted} if r.redacted else {"text": r.text, "signature": r.signature}
        for r in response.reasoning
    ]
    return message


async def test_signed_thinking_goes_back_with_the_tool_call(
    client: AnthropicClient, fake: FakeAnthropic
) -> None:
    model = thinking_model()
    call = ToolUse("lookup", {"word": "cat"})
    fake.script(model, Message([Thinking("I should look it up."), Text("Looking."), call]), Text("A feline."))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "cat?"},
    ]
    first = await client.complete(
        LLMRequest(model=model, messages=messages, tools=TOOLS, enable_thinking=True)
    )
    assert first.reasoning[0].text == "I should look it up."
    assert first.reasoning[0].signature == fake.signature("I should look it up.")
    assert (first.content, first.finish_reason) == ("Looking.", "tool_use")
    assert [(c.id, json.loads(c.arguments)) for c in first.tool_calls] == [(call.id, {"word": "cat"})]

    messages += [
        assistant_turn(first),
        {"role": "tool", "tool_call_id": call.id, "content": "a small feline"},
    ]
    second = await client.complete(
        LLMRequest(model=model, messages=messages, tools=TOOLS, enable_thinking=True)
    )
    assert second.content == "A feline."
    assert fake.rejections(model) == []
    sent = fake.requests(model)[1]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["messages"][1]["content"] == [
        {
            "type": "thinking",
            "thinking": "I should look it up.",
            "signature": fake.signature("I should look it up."),
        },
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": call.id, "name": "lookup", "input": {"word": "cat"}},
    ]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": "a small feline"}
    ]


async def test_redacted_thinking_goes_back_as_it_came(client: AnthropicClient, fake: FakeAnthropic) -> None:
    model = thinking_model()
    hidden = RedactedThinking()
    call = ToolUse("lookup", {"word": "dog"})
    fake.script(model, Message([hidden, call]), Text("A canine."))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "dog?"}]
    first = await client.complete(
        LLMRequest(model=model, messages=messages, tools=TOOLS, enable_thinking=True)
    )
    assert [r.redacted for r in first.reasoning] == [hidden.data]
    messages += [assistant_turn(first), {"role": "tool", "tool_call_id": call.id, "content": "a canine"}]
    await client.complete(LLMRequest(model=model, messages=messages, tools=TOOLS, enable_thinking=True))
    assert fake.rejections(model) == []
    assert fake.requests(model)[1]["messages"][1]["content"][0] == {
        "type": "redacted_thinking",
        "data": hidden.data,
    }


async def test_a_forged_signature_is_refused(client: AnthropicClient, fake: FakeAnthropic) -> None:
    """The fake checks signatures, so the round trip above proves the block came back unchanged."""
    model = thinking_model()
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "reasoning": [{"text": "edited", "signature": "forged"}]},
        {"role": "user", "content": "again"},
    ]
    with pytest.raises(LLMError, match="Invalid `signature`") as info:
        await client.complete(LLMRequest(model=model, messages=messages, enable_thinking=True))
    assert (info.value.status_code, info.value.retryable) == (400, False)


async def test_overloaded_and_rate_limited_calls_are_retried(
    client: AnthropicClient, fake: FakeAnthropic
) -> None:
    model = unique_model()
    fake.script(model, Error(529, "Overloaded", retry_after=0.01), Error(429, "slow down"), Text("made it"))
    response = await client.complete(LLMRequest(model=model, messages=[{"role": "user", "content": "hi"}]))
    assert response.content == "made it"
    assert len(fake.requests(model)) == 3


async def test_client_errors_are_not_retried(client: AnthropicClient, fake: FakeAnthropic) -> None:
    model = unique_model()
    fake.script(model, Error(400, "prompt is too long"), Text("never sent"))
    with pytest.raises(LLMError) as info:
        await client.complete(LLMRequest(model=model, messages=[{"role": "user", "content": "hi"}]))
    assert str(info.value) == "anthropic returned HTTP 400: invalid_request_error: prompt is too long"
    assert (info.value.status_code, info.value.retryable) == (400, False)
    assert fake.pending(model) == 1


async def test_retries_are_bounded(fake: FakeAnthropic) -> None:
    model = unique_model()
    fake.script(model, Error(529, "Overloaded"), Error(500, "boom"), Text("too late"))
    llm = AnthropicClient(
        api_key="test",
        base_url=fake.base_url,
        models=[],
        timeout_s=10,
        max_retries=1,
        retry_base_delay_s=0.01,
    )
    try:
        with pytest.raises(LLMError, match=r"HTTP 500: api_error: boom \(after 2 attempts\)") as info:
            await llm.complete(LLMRequest(model=model, messages=[{"role": "user", "content": "hi"}]))
    finally:
        await llm.close()
    assert info.value.retryable
    assert fake.pending(model) == 1


async def test_an_unreachable_api_is_a_retryable_error() -> None:
    llm = AnthropicClient(
        api_key="test",
        base_url=f"http://127.0.0.1:{free_port()}",
        models=[],
        timeout_s=5,
        max_retries=1,
        retry_base_delay_s=0.01,
    )
    try:
        with pytest.raises(
            LLMError, match=r"anthropic unreachable: APIConnectionError.*after 2 attempts"
        ) as info:
            await llm.complete(
                LLMRequest(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
            )
    finally:
        await llm.close()
    assert info.value.retryable and info.value.status_code is None


async def test_images_reach_the_api_as_image_blocks(client: AnthropicClient, fake: FakeAnthropic) -> None:
    model = unique_model()
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    await client.complete(LLMRequest(model=model, messages=[{"role": "user", "content": content}]))
    assert fake.rejections(model) == []
    image = fake.requests(model)[0]["messages"][0]["content"][1]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}

    # Bytes that are not what the data URL claims are the API's 400, reported as such.
    content[1] = {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}}
    with pytest.raises(LLMError, match="Image does not match the provided media type image/jpeg"):
        await client.complete(LLMRequest(model=model, messages=[{"role": "user", "content": content}]))


async def test_token_counts_are_exact_with_the_estimate_as_fallback(
    client: AnthropicClient, fake: FakeAnthropic
) -> None:
    model = thinking_model()
    request = LLMRequest(
        model=model, messages=[{"role": "user", "content": "hi"}], tools=TOOLS, enable_thinking=True
    )
    fake.script_count(model, 1234, Error(500, "count is down"))
    assert await client.count_tokens(request) == 1234
    assert await client.count_tokens(request) == estimate_tokens(request)
    counted = fake.requests(model, route="count_tokens")
    assert len(counted) == 2 and fake.rejections(model) == []
    # The count covers what the call would send (tools, thinking), without max_tokens.
    assert counted[0]["tools"][0]["name"] == "lookup" and "thinking" in counted[0]
    assert "max_tokens" not in counted[0]
    assert fake.requests(model) == []

    # A request that cannot be converted is estimated; `complete` reports the problem.
    image = {"type": "image_url", "image_url": {"url": "file:///tmp/x.png"}}
    bad = LLMRequest(model=model, messages=[{"role": "user", "content": [image]}])
    assert await client.count_tokens(bad) == estimate_tokens(bad)
    assert len(fake.requests(model, route="count_tokens")) == 2


async def test_models_are_listed_from_the_api(fake: FakeAnthropic) -> None:
    llm = AnthropicClient(
        api_key="test",
        base_url=f"{fake.base_url}/v1/",
        models=[],
        timeout_s=5,
        max_retries=0,
        retry_base_delay_s=0.01,
    )
    try:
        assert await llm.list_models() == fake.models
    finally:
        await llm.close()
    # A base URL written with /v1, as OpenAI's are, still reaches the API root.
    assert llm.endpoint == fake.base_url
    assert llm.context_window("claude-haiku-4-5") == 200_000
    assert llm.context_window("something-else") is None
    assert (llm.provider_name, llm.endpoint_type) == ("anthropic", "anthropic")


async def test_cancelling_aborts_the_call(client: AnthropicClient, fake: FakeAnthropic) -> None:
    model = unique_model()
    fake.script(model, Hang())
    call = asyncio.create_task(
        client.complete(LLMRequest(model=model, messages=[{"role": "user", "content": "hi"}]))
    )
    await asyncio.to_thread(fake.wait_for_requests, model, 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert len(fake.requests(model)) == 1
