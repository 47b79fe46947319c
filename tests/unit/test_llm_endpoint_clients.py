"""OpenAICompatClient and SGLangClient against the fake servers over real HTTP: what they send (reasoning
effort, template kwargs, logprobs, SGLang's /generate body) and what they make of the answers."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.fakes.fake_llm import Error, FakeLLM, Text, ToolCall, ToolCalls, fake_logprobs, fake_tokens
from tests.fakes.fake_sglang import EOS_ID, EOS_LOGPROB, FakeSGLang, token_id

from agenthost.llm.base import LLMError, LLMRequest, ToolSpec
from agenthost.llm.openai_compat import OpenAICompatClient, reasoning_effort
from agenthost.llm.providers import Providers
from agenthost.llm.sglang import SGLangClient
from agenthost.settings import Settings

USER: list[dict[str, Any]] = [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]
WEATHER = ToolSpec(
    "get_weather", "Weather for a city.", {"type": "object", "properties": {"city": {"type": "string"}}}
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def sglang_model() -> str:
    return f"qwen-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def fake_sglang(sglang_model: str) -> Iterator[FakeSGLang]:
    with FakeSGLang([sglang_model]) as server:
        yield server


@pytest.fixture
def model() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def client(fake: FakeLLM) -> AsyncIterator[OpenAICompatClient]:
    c = OpenAICompatClient(api_key="k", base_url=fake.base_url, retry_base_delay_s=0.01)
    yield c
    await c.close()


@pytest.fixture
async def sglang(fake_sglang: FakeSGLang) -> AsyncIterator[SGLangClient]:
    c = SGLangClient(
        api_key="k", base_url=fake_sglang.base_url, provider_name="sg", models=[], retry_base_delay_s=0.01
    )
    yield c
    await c.close()


def test_reasoning_effort_by_model() -> None:
    assert [reasoning_effort(m, True) for m in ("o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5.1")] == [
        "medium"
    ] * 5
    assert [
        reasoning_effort(m, False) for m in ("o3", "gpt-5-mini", "gpt-5.1", "gpt-5-pro", "gpt-oss-20b")
    ] == [
        "low",
        "minimal",
        "none",
        "high",
        "low",
    ]
    assert reasoning_effort("openrouter-style/openai/o3-mini", True) == "medium"
    for plain in ("gpt-4o-mini", "gpt-4.1", "gpt-5-chat-latest", "o1-mini", "qwen3-8b", "omni"):
        assert reasoning_effort(plain, True) is None and reasoning_effort(plain, False) is None


async def test_reasoning_model_gets_effort_and_completion_tokens(
    fake: FakeLLM, client: OpenAICompatClient
) -> None:
    model = f"o3-mini-{uuid.uuid4().hex[:6]}"
    fake.script(model, Text("done", reasoning_content="I weighed it."), Text("quick"))
    response = await client.complete(
        LLMRequest(model=model, messages=USER, max_tokens=100, enable_thinking=True)
    )
    assert response.content == "done" and [r.text for r in response.reasoning] == ["I weighed it."]
    await client.complete(LLMRequest(model=model, messages=USER, max_tokens=100, enable_thinking=False))
    on, off = fake.requests(model)
    assert (on["reasoning_effort"], off["reasoning_effort"]) == ("medium", "low")
    assert on["max_completion_tokens"] == 100 and "max_tokens" not in on
    assert "chat_template_kwargs" not in on


async def test_other_models_get_no_effort(fake: FakeLLM, client: OpenAICompatClient, model: str) -> None:
    await client.complete(LLMRequest(model=model, messages=USER, max_tokens=7, enable_thinking=True))
    (body,) = fake.requests(model)
    assert "reasoning_effort" not in body and body["max_tokens"] == 7


async def test_thinking_kwarg_goes_to_the_chat_template(fake: FakeLLM, model: str) -> None:
    c = OpenAICompatClient(api_key="k", base_url=fake.base_url, thinking_kwarg="enable_thinking")
    try:
        fake.script(model, ToolCalls([ToolCall("f", {})], reasoning_content="plan"))
        response = await c.complete(LLMRequest(model=model, messages=USER, enable_thinking=False))
        await c.complete(LLMRequest(model=model, messages=USER, enable_thinking=True))
    finally:
        await c.close()
    assert [r.text for r in response.reasoning] == ["plan"] and response.tool_calls[0].name == "f"
    assert [b["chat_template_kwargs"] for b in fake.requests(model)] == [
        {"enable_thinking": False},
        {"enable_thinking": True},
    ]


async def test_logprobs_in_openai_shape(fake: FakeLLM, client: OpenAICompatClient, model: str) -> None:
    fake.script(model, Text("The sky is blue"), Text("plain"))
    asked = await client.complete(
        LLMRequest(model=model, messages=USER, return_logprobs=True, top_logprobs=2)
    )
    assert asked.logprobs == fake_logprobs("The sky is blue", 2)
    assert asked.logprobs["content"][0] == {
        "token": "The",
        "logprob": -0.1,
        "bytes": [84, 104, 101],
        "top_logprobs": [
            {"token": "The", "logprob": -0.1, "bytes": [84, 104, 101]},
            {"token": "alt1", "logprob": -1.1, "bytes": list(b"alt1")},
        ],
    }
    plain = await client.complete(LLMRequest(model=model, messages=USER))
    assert plain.logprobs is None
    first, second = fake.requests(model)
    assert (first["logprobs"], first["top_logprobs"]) == (True, 2)
    assert "logprobs" not in second and "top_logprobs" not in second


async def test_listed_context_windows(fake: FakeLLM, client: OpenAICompatClient) -> None:
    fake.model_info = {"gpt-4.1": {"max_model_len": 32768}}
    try:
        assert client.context_window("gpt-4.1") is None
        assert await client.list_models() == fake.models
        assert client.context_window("gpt-4.1") == 32768 and client.context_window("gpt-4o-mini") is None
    finally:
        fake.model_info = {}
    configured = OpenAICompatClient(api_key="k", base_url=fake.base_url, context_window=8192)
    assert configured.context_window("gpt-4.1") == 8192
    await configured.close()


async def test_sglang_without_token_ids_uses_chat_completions(
    fake_sglang: FakeSGLang, sglang: SGLangClient
) -> None:
    fake_sglang.script(fake_sglang.model, Text("via chat"))
    response = await sglang.complete(LLMRequest(model=fake_sglang.model, messages=USER))
    assert response.content == "via chat" and response.output_ids is None
    assert "messages" in fake_sglang.requests(fake_sglang.model)[-1]
    assert sglang.endpoint_type == "sglang" and sglang.server_root == fake_sglang.base_url[: -len("/v1")]


async def test_sglang_generate_tool_call_then_answer(fake_sglang: FakeSGLang, sglang: SGLangClient) -> None:
    fake_sglang.script(
        fake_sglang.model,
        ToolCalls(
            [ToolCall("get_weather", {"city": "Paris"})], content="Let me check.", reasoning_content="hmm"
        ),
        Text("It is 21 degrees."),
    )
    before = len(fake_sglang.prompts())
    request = LLMRequest(model=fake_sglang.model, messages=list(USER), tools=[WEATHER], return_token_ids=True)
    first = await sglang.complete(request)
    assert first.content == "Let me check." and [r.text for r in first.reasoning] == ["hmm"]
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert first.output_ids is not None and first.output_ids[-1] == EOS_ID
    assert first.completion_tokens == len(first.output_ids) and first.prompt_tokens == 10
    assert first.output_token_logprobs is not None and len(first.output_token_logprobs) == len(
        first.output_ids
    )
    assert all(entry[2] is None for entry in first.output_token_logprobs)  # no texts unless logprobs asked
    assert first.logprobs is None

    history: list[dict[str, Any]] = [
        *USER,
        {
            "role": "assistant",
            "content": first.content,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
            "reasoning": [{"text": "hmm", "signature": None}],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
    ]
    second = await sglang.complete(
        LLMRequest(
            model=fake_sglang.model,
            messages=history,
            tools=[WEATHER],
            max_tokens=64,
            return_token_ids=True,
            return_logprobs=True,
            top_logprobs=2,
        )
    )
    assert (
        second.content == "It is 21 degrees." and second.tool_calls == [] and second.finish_reason == "stop"
    )
    tokens = fake_tokens("It is 21 degrees.")
    assert second.output_ids == [token_id(t) for t in tokens] + [EOS_ID]
    assert second.output_token_logprobs is not None
    assert second.output_token_logprobs[0] == [-0.1, token_id("It"), "It"]
    assert second.output_token_logprobs[-1] == [EOS_LOGPROB, EOS_ID, ""]
    assert second.logprobs is not None
    content = second.logprobs["content"]
    assert [c["token"] for c in content] == [*tokens, ""]
    assert content[0]["top_logprobs"] == [
        {"token": "It", "logprob": -0.1, "bytes": list(b"It")},
        {"token": "alt1", "logprob": -1.1, "bytes": list(b"alt1")},
    ]

    bodies = fake_sglang.requests(fake_sglang.model)[-2:]
    assert bodies[0]["sampling_params"] == {"max_new_tokens": None} and bodies[0]["return_logprob"] is True
    assert "top_logprobs_num" not in bodies[0] and "return_text_in_logprobs" not in bodies[0]
    assert bodies[1]["sampling_params"] == {"max_new_tokens": 64}
    assert (bodies[1]["top_logprobs_num"], bodies[1]["return_text_in_logprobs"]) == (2, True)
    prompts = fake_sglang.prompts()[before:]
    assert len(prompts) == 2 and "<tools>" in prompts[0] and '"name": "get_weather"' in prompts[0]
    assert '<tool_response>\n{"temp": 21}\n</tool_response>' in prompts[1]
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompts[1]
    assert "<think>\nhmm\n</think>" in prompts[1]  # this turn's reasoning goes back to the model
    assert prompts[1].endswith("<|im_start|>assistant\n")


async def test_sglang_generate_thinking_switch(fake_sglang: FakeSGLang) -> None:
    c = SGLangClient(api_key="k", base_url=fake_sglang.base_url + "/", thinking_kwarg="enable_thinking")
    try:
        await c.complete(LLMRequest(model=fake_sglang.model, messages=USER, return_token_ids=True))
    finally:
        await c.close()
    assert fake_sglang.prompts()[-1].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


async def test_sglang_generate_errors_are_retried_then_raised(
    fake_sglang: FakeSGLang, sglang: SGLangClient
) -> None:
    fake_sglang.script(fake_sglang.model, Error(503), Text("after one retry"), Error(400, "prompt too long"))
    request = LLMRequest(model=fake_sglang.model, messages=USER, return_token_ids=True)
    assert (await sglang.complete(request)).content == "after one retry"
    with pytest.raises(LLMError, match="prompt too long") as info:
        await sglang.complete(request)
    assert info.value.status_code == 400 and not info.value.retryable


async def test_endpoints_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoints = {
        "vllm": {
            "base_url": "http://gpu:8000/v1",
            "thinking_kwarg": "enable_thinking",
            "context_window": 32768,
        },
        "sg": {"base_url": "http://gpu:30000/v1", "kind": "sglang", "models": ["qwen"]},
        "router": {"base_url": "https://router.example/api/v1", "api_key": "sk-x"},
    }
    monkeypatch.setenv("AGENTHOST_LLM_ENDPOINTS", json.dumps(endpoints))
    providers = Providers(Settings(local_model="off"))
    try:
        assert providers.names == ["router", "sg", "vllm"]
        vllm, model = providers.resolve("vllm/Qwen/Qwen3-8B")
        assert isinstance(vllm, OpenAICompatClient) and not isinstance(vllm, SGLangClient)
        assert (model, vllm.thinking_kwarg, vllm.endpoint) == (
            "Qwen/Qwen3-8B",
            "enable_thinking",
            "http://gpu:8000/v1",
        )
        assert providers.context_window("vllm/Qwen/Qwen3-8B") == 32768
        sg, _ = providers.resolve("sg/qwen")
        assert isinstance(sg, SGLangClient) and sg.configured_models == ["qwen"]
        assert sg.server_root == "http://gpu:30000" and sg.thinking_kwarg is None
        router, model = providers.resolve("router/meta-llama/llama-3.1-8b-instruct")
        assert model == "meta-llama/llama-3.1-8b-instruct" and router.provider_name == "router"
    finally:
        await providers.close()
