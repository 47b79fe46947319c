"""The ChatML/Hermes prompt SGLang's /generate gets, and parsing its completions back (pure functions)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agenthost.llm.base import LLMError, LLMRequest, ToolSpec
from agenthost.llm.chat_template import parse_output, render_chatml, render_tool_call
from agenthost.llm.sglang import generate_response, logprobs_from_sglang

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _call(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def test_plain_conversation() -> None:
    prompt = render_chatml(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"},
        ]
    )
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nhello<|im_end|>\n"
        "<|im_start|>user\nbye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert not render_chatml([{"role": "user", "content": "x"}], add_generation_prompt=False).endswith(
        "<|im_start|>assistant\n"
    )


def test_tools_go_into_the_first_system_message() -> None:
    prompt = render_chatml(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "weather?"}], [WEATHER]
    )
    system = prompt.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    listed = system.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    assert json.loads(listed) == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": WEATHER.description,
            "parameters": WEATHER.parameters,
        },
    }
    assert "<tool_call>" in system and "</tool_call>" in system
    # Without a system message the tools get one of their own.
    bare = render_chatml([{"role": "user", "content": "weather?"}], [WEATHER])
    assert bare.startswith("<|im_start|>system\n# Tools\n") and bare.count("<|im_start|>system") == 1


def test_tool_calls_and_results() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                _call("c1", "get_weather", {"city": "Paris"}),
                _call("c2", "get_weather", {"city": "Rome"}),
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "c2", "content": '{"temp": 25}'},
    ]
    prompt = render_chatml(messages, [WEATHER])
    assert (
        "<|im_start|>assistant\nChecking.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n'
    ) in prompt
    # Consecutive tool results share one user turn.
    assert prompt.endswith(
        "<|im_start|>user\n"
        '<tool_response>\n{"temp": 21}\n</tool_response>\n'
        '<tool_response>\n{"temp": 25}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )
    # A call without text starts the turn directly.
    messages[2]["content"] = None
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather"' in render_chatml(messages, [WEATHER])


def test_reasoning_only_after_the_last_user_message() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "reasoning": [{"text": "old thought", "signature": None}]},
        {"role": "user", "content": "q2"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [_call("c", "get_weather", {"city": "Oslo"})],
            "reasoning": [{"text": "new thought", "signature": None}, {"redacted": "opaque"}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "cold"},
    ]
    prompt = render_chatml(messages, [WEATHER])
    assert "old thought" not in prompt and "opaque" not in prompt
    assert "<|im_start|>assistant\na1<|im_end|>" in prompt
    assert "<|im_start|>assistant\n<think>\nnew thought\n</think>\n\n<tool_call>\n" in prompt


def test_thinking_switch_and_images() -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is "},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    assert render_chatml(messages, enable_thinking=False).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    on = render_chatml(messages, enable_thinking=True)
    assert on == render_chatml(messages) and on.endswith("<|im_start|>assistant\n")
    assert "what is [image]<|im_end|>" in on


def test_parse_text_reasoning_and_calls() -> None:
    plain = parse_output("  Hello there.  ")
    assert (plain.content, plain.reasoning, plain.tool_calls) == ("Hello there.", None, [])

    parsed = parse_output(
        "<think>\nLet me look.\n</think>\n\nOne moment.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "noop", "arguments": "{\\"x\\": 1}"}\n</tool_call>'
    )
    assert parsed.reasoning == "Let me look." and parsed.content == "One moment."
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("noop", {"x": 1}),
    ]
    ids = [c.id for c in parsed.tool_calls]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2

    # The think block opened by the prompt (Qwen3, DeepSeek-R1): only its end is in the output.
    opened = parse_output("thinking hard\n</think>\n\nanswer")
    assert (opened.reasoning, opened.content) == ("thinking hard", "answer")
    # Cut off while thinking: all of it is reasoning.
    cut = parse_output("<think>\nstill going")
    assert (cut.reasoning, cut.content) == ("still going", None)


def test_parse_keeps_what_it_cannot_read() -> None:
    broken = parse_output("Sure.\n<tool_call>\nnot json\n</tool_call>")
    assert broken.tool_calls == [] and broken.content == "Sure.\n<tool_call>\nnot json\n</tool_call>"
    nameless = parse_output('<tool_call>\n{"arguments": {}}\n</tool_call>')
    assert nameless.tool_calls == [] and nameless.content is not None
    # Output cut off right after a whole call's JSON still yields the call.
    unclosed = parse_output('<tool_call>\n{"name": "f", "arguments": {"a": 1}}')
    assert [(c.name, json.loads(c.arguments)) for c in unclosed.tool_calls] == [("f", {"a": 1})]
    assert unclosed.content is None


def test_render_and_parse_round_trip() -> None:
    text = "Let me check.\n" + render_tool_call("get_weather", {"city": "Zürich"})
    parsed = parse_output(text)
    assert parsed.content == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [
        ("get_weather", {"city": "Zürich"})
    ]
    # Arguments given as JSON text are written as they are.
    assert (
        render_tool_call("f", '{"b": 2, "a": 1}')
        == '<tool_call>\n{"name": "f", "arguments": {"b": 2, "a": 1}}\n</tool_call>'
    )


def test_generate_answer_to_response() -> None:
    request = LLMRequest(model="qwen", messages=[], return_logprobs=True, top_logprobs=1)
    data = {
        "text": 'Hi <tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>',
        "output_ids": [11, 12, 151645],
        "meta_info": {
            "finish_reason": {"type": "stop", "matched": 151645},
            "prompt_tokens": 30,
            "completion_tokens": 3,
            "cached_tokens": 4,
            "output_token_logprobs": [[-0.5, 11, "Hi"], [-0.25, 12, " <tool_call>"], [-0.01, 151645, None]],
            "output_top_logprobs": [[[-0.5, 11, "Hi"]], None, [[-0.01, 151645, None]]],
        },
    }
    response = generate_response(data, request)
    assert response.content == "Hi" and [c.name for c in response.tool_calls] == ["f"]
    assert response.finish_reason == "tool_calls"
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (30, 3, 33)
    assert response.cached_input_tokens == 4
    assert response.output_ids == [11, 12, 151645]
    assert response.output_token_logprobs == data["meta_info"]["output_token_logprobs"]  # type: ignore[index]
    assert response.logprobs is not None
    first, second, last = response.logprobs["content"]
    assert first == {
        "token": "Hi",
        "logprob": -0.5,
        "bytes": [72, 105],
        "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}],
    }
    assert second["top_logprobs"] == [] and last["token"] == ""
    assert response.logprobs["refusal"] is None

    # Without logprobs asked for there are none in OpenAI's shape, but the token data stays.
    quiet = generate_response(data, LLMRequest(model="qwen", messages=[]))
    assert quiet.logprobs is None and quiet.output_ids == [11, 12, 151645]
    # Older servers without top-level output_ids: the ids come from the logprob entries.
    del data["output_ids"]
    assert generate_response(data, request).output_ids == [11, 12, 151645]


def test_generate_length_and_abort() -> None:
    request = LLMRequest(model="qwen", messages=[])
    cut = generate_response(
        {"text": "partial", "meta_info": {"finish_reason": {"type": "length", "length": 5}}}, request
    )
    assert cut.finish_reason == "length" and cut.output_ids is None
    aborted = {"text": "", "meta_info": {"finish_reason": {"type": "abort", "message": "too long"}}}
    with pytest.raises(LLMError, match="too long"):
        generate_response(aborted, request)
    with pytest.raises(LLMError, match="unexpected body"):
        generate_response({"error": "x"}, request)


def test_logprobs_from_sglang_without_texts() -> None:
    shaped = logprobs_from_sglang([[-1.0, 5, None]], None)
    assert shaped == {
        "content": [{"token": "", "logprob": -1.0, "bytes": [], "top_logprobs": []}],
        "refusal": None,
    }
