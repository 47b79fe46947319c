"""Neutral (OpenAI chat) requests as Anthropic Messages API bodies, and Messages API answers back.

Every body built here is also put through the fake's copy of the API's request rules, so a
conversion the real API would refuse fails here first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message
from tests.fakes.anthropic_rules import Invalid, check_request

from agenthost.llm.anthropic_convert import (
    CONVERSATION_START,
    MISSING_RESULT,
    build_params,
    supports_thinking,
    to_response,
)
from agenthost.llm.base import LLMError, LLMRequest, Reasoning, ToolSpec

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="
TOOLS = [
    ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {"word": {"type": "string"}}})
]


def _body(messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("model", "claude-3-5-haiku-latest")
    body = build_params(LLMRequest(messages=messages, **kwargs))
    check_request(body, counting=False, signature_ok=lambda text, sig: sig == f"sig:{text}", redacted_ok=bool)
    return body


def _call(call_id: str, name: str = "lookup", arguments: str = '{"word": "cat"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _signed(text: str) -> dict[str, str]:
    return {"text": text, "signature": f"sig:{text}"}


def test_system_messages_become_the_system_parameter() -> None:
    body = _body(
        [
            {"role": "system", "content": "You are helpful."},
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "hi"},
        ]
    )
    assert body["system"] == "You are helpful.\n\nBe brief."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["max_tokens"] == 4096
    assert "tools" not in body and "thinking" not in body and "tool_choice" not in body


def test_user_images_become_image_blocks() -> None:
    body = _body(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                    },
                    {"type": "text", "text": "   "},
                ],
            }
        ]
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]


def test_an_image_url_anthropic_cannot_take_is_an_error() -> None:
    with pytest.raises(LLMError, match="base64 data URLs or http"):
        build_params(
            LLMRequest(
                model="claude-sonnet-4-5",
                messages=[
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y"}}]}
                ],
            )
        )


def test_assistant_blocks_go_thinking_text_then_tool_use() -> None:
    reasoning = [_signed("first"), {"redacted": "opaque"}, {"text": "unsigned, from another provider"}]
    body = _body(
        [
            {"role": "user", "content": "look up cat"},
            {
                "role": "assistant",
                "content": "Looking.",
                "tool_calls": [_call("call_1"), _call("call_2", arguments="{not json")],
                "reasoning": reasoning,
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a small feline"},
            {"role": "tool", "tool_call_id": "call_2", "content": ""},
        ],
        model="claude-sonnet-4-5",
        tools=TOOLS,
        enable_thinking=True,
    )
    assistant, results = body["messages"][1], body["messages"][2]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "first", "signature": "sig:first"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"word": "cat"}},
            {"type": "tool_use", "id": "call_2", "name": "lookup", "input": {}},
        ],
    }
    # An empty tool result is sent without content: an empty text is never sent.
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "a small feline"},
            {"type": "tool_result", "tool_use_id": "call_2"},
        ],
    }
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_same_role_turns_merge_and_tool_results_come_first() -> None:
    body = _body(
        [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": None, "tool_calls": [_call("call_1")]},
            {"role": "tool", "tool_call_id": "call_1", "content": "result"},
            {"role": "user", "content": "three"},
            {"role": "assistant", "content": "done"},
            {"role": "assistant", "content": "   "},
            {"role": "user", "content": "four"},
        ],
        tools=TOOLS,
    )
    assert [(m["role"], [b["type"] for b in m["content"]]) for m in body["messages"]] == [
        ("user", ["text", "text"]),
        ("assistant", ["tool_use"]),
        ("user", ["tool_result", "text"]),
        ("assistant", ["text"]),
        ("user", ["text"]),
    ]


def test_a_history_opening_with_the_assistant_gets_a_user_turn_first() -> None:
    body = _body([{"role": "assistant", "content": "Hello again."}, {"role": "user", "content": "hi"}])
    assert body["messages"][0] == {"role": "user", "content": [{"type": "text", "text": CONVERSATION_START}]}
    assert body["messages"][1]["role"] == "assistant"


def test_unpaired_tool_calls_and_results_are_repaired() -> None:
    body = _body(
        [
            # The call of this result was trimmed from the context.
            {"role": "tool", "tool_call_id": "call_gone", "content": "old result"},
            {"role": "user", "content": "go on"},
            {"role": "assistant", "content": None, "tool_calls": [_call("call_1"), _call("call.2")]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ],
        tools=TOOLS,
    )
    first, _, last = body["messages"]
    assert first["content"][0] == {"type": "text", "text": "[result of tool call call_gone]\nold result"}
    assert last["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "ok"},
        # An id the API would refuse ("."), and no result for it.
        {"type": "tool_result", "tool_use_id": "call_2", "content": MISSING_RESULT, "is_error": True},
    ]


def test_without_tools_tool_blocks_are_sent_as_text() -> None:
    body = _body(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [_call("call_1")]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ]
    )
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": '[called tool lookup (call_1) with {"word": "cat"}]'}
    ]
    assert body["messages"][2]["content"] == [{"type": "text", "text": "[result of tool call call_1]\nok"}]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        (None, None, None),
        ("required", None, {"type": "any"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, True, None),
    ],
)
def test_tools_and_tool_choice(tool_choice: str | None, parallel: bool | None, expected: Any) -> None:
    body = _body(
        [{"role": "user", "content": "hi"}],
        tools=TOOLS,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
    )
    assert body["tools"] == [
        {"name": "lookup", "description": "Look a word up.", "input_schema": TOOLS[0].parameters}
    ]
    assert body.get("tool_choice") == expected


def test_a_schema_without_an_object_type_gets_one() -> None:
    body = _body([{"role": "user", "content": "hi"}], tools=[ToolSpec("noargs", "No arguments.", {})])
    assert body["tools"][0]["input_schema"] == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-3-7-sonnet-20250219", True),
        ("claude-3-7-sonnet-latest", True),
        ("claude-sonnet-4-20250514", True),
        ("claude-sonnet-4-5", True),
        ("claude-opus-4-1-20250805", True),
        ("claude-opus-4-0", True),
        ("claude-haiku-4-5-20251001", True),
        ("claude-sonnet-5", True),
        ("claude-3-5-sonnet-20241022", False),
        ("claude-3-5-haiku-latest", False),
        ("claude-3-haiku-20240307", False),
        ("gpt-4o", False),
    ],
)
def test_which_models_think(model: str, expected: bool) -> None:
    assert supports_thinking(model) is expected


@pytest.mark.parametrize(
    ("max_tokens", "budget", "expected_max", "expected_budget"),
    [
        (None, None, 4096, 1024),
        (8000, 2000, 8000, 2000),
        # Below the API's floor of 1024: raised to it.
        (None, 500, 4096, 1024),
        # A max_tokens that leaves no room for the budget keeps its size for the answer.
        (512, None, 1536, 1024),
        (3000, 3000, 6000, 3000),
    ],
)
def test_thinking_budget_and_max_tokens(
    max_tokens: int | None, budget: int | None, expected_max: int, expected_budget: int
) -> None:
    body = _body(
        [{"role": "user", "content": "hi"}],
        model="claude-sonnet-4-5",
        enable_thinking=True,
        max_tokens=max_tokens,
        reasoning_budget_tokens=budget,
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": expected_budget}
    assert body["max_tokens"] == expected_max


def test_no_thinking_for_a_model_without_it_and_its_reasoning_is_not_sent() -> None:
    body = _body(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello", "reasoning": [_signed("thought")]},
            {"role": "user", "content": "again"},
        ],
        model="claude-3-5-haiku-latest",
        enable_thinking=True,
    )
    assert "thinking" not in body
    assert body["messages"][1]["content"] == [{"type": "text", "text": "hello"}]


def test_a_forced_tool_call_turns_thinking_off_for_that_request() -> None:
    body = _body(
        [{"role": "user", "content": "hi"}],
        model="claude-sonnet-4-5",
        tools=TOOLS,
        tool_choice="required",
        enable_thinking=True,
    )
    assert "thinking" not in body
    assert body["tool_choice"] == {"type": "any"}


def test_thinking_is_off_while_answering_tool_calls_made_without_it() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "ok", "reasoning": [_signed("earlier")]},
        {"role": "user", "content": "look up cat"},
        # Made by a model without thinking (an override, or a step that was forced to call a tool).
        {"role": "assistant", "content": None, "tool_calls": [_call("call_1")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a feline"},
    ]
    body = _body(messages, model="claude-sonnet-4-5", tools=TOOLS, enable_thinking=True)
    assert "thinking" not in body
    # Thinking blocks are not sent when the request does not think.
    assert body["messages"][1]["content"] == [{"type": "text", "text": "ok"}]
    # Once the model answers in text, the next turn thinks again.
    messages += [
        {"role": "assistant", "content": "A cat is a feline."},
        {"role": "user", "content": "thanks"},
    ]
    body = _body(messages, model="claude-sonnet-4-5", tools=TOOLS, enable_thinking=True)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "earlier",
        "signature": "sig:earlier",
    }


def test_a_turn_of_reasoning_alone_is_dropped() -> None:
    body = _body(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "reasoning": [_signed("just thinking")]},
            {"role": "user", "content": "still there?"},
        ],
        model="claude-sonnet-4-5",
        enable_thinking=True,
    )
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["hi", "still there?"]


def test_the_rules_catch_what_the_conversion_repairs() -> None:
    """The fake's rules refuse the raw mistakes the conversion exists to avoid."""
    ok = {"model": "claude-sonnet-4-5", "max_tokens": 100}

    def refused(**body: Any) -> str:
        with pytest.raises(Invalid) as info:
            check_request({**ok, **body}, counting=False, signature_ok=lambda t, s: False, redacted_ok=bool)
        return str(info.value)

    assert "first message" in refused(messages=[{"role": "assistant", "content": "hi"}])
    assert "alternate" in refused(
        messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    )
    assert "non-whitespace" in refused(
        messages=[{"role": "user", "content": [{"type": "text", "text": " "}]}]
    )
    use = {"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}
    assert "must define tools" in refused(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ]
    )
    assert "Invalid `signature`" in refused(
        messages=[
            {"role": "user", "content": "a"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "x", "signature": "forged"},
                    {"type": "text", "text": "b"},
                ],
            },
            {"role": "user", "content": "c"},
        ]
    )
    assert "greater than" in refused(
        messages=[{"role": "user", "content": "a"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        max_tokens=1024,
    )


def _message(content: list[dict[str, Any]], **usage: Any) -> Message:
    return Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": content,
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 20, **usage},
        }
    )


def test_an_answer_becomes_a_neutral_response() -> None:
    response = to_response(
        _message(
            [
                {"type": "thinking", "thinking": "Let me look.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Looking "},
                {"type": "text", "text": "it up."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"word": "cat"}},
            ],
            cache_read_input_tokens=30,
            cache_creation_input_tokens=5,
        )
    )
    assert response.content == "Looking it up."
    assert [(c.id, c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("toolu_1", "lookup", {"word": "cat"})
    ]
    assert response.reasoning == [
        Reasoning(text="Let me look.", signature="sig-1"),
        Reasoning(redacted="opaque"),
    ]
    assert response.finish_reason == "tool_use"
    assert response.model == "claude-sonnet-4-5"
    # Prompt tokens count the cached ones too, as OpenAI's do.
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (135, 20, 155)
    assert response.cached_input_tokens == 30


def test_an_answer_without_text_has_no_content() -> None:
    response = to_response(_message([{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]))
    assert response.content is None
    assert response.tool_calls[0].arguments == "{}"
    assert response.cached_input_tokens is None
