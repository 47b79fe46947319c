"""The local model's prompt and output handling (``llm/local/prompt.py``, ``llm/local/gguf.py``): pure logic,
no model. The model itself runs in tests/integration/test_local_model.py."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from agenthost.llm.base import LLMError, LLMRequest, LLMToolCall, ToolSpec
from agenthost.llm.local import gguf
from agenthost.llm.local.prompt import (
    chat_messages,
    output_schema,
    parse_output,
    reject_images,
    repeats_last_call,
)

LOOKUP = ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {"word": {"type": "string"}}})
CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"word": "sea"}'}}


def test_history_becomes_system_user_assistant_turns() -> None:
    request = LLMRequest(
        model="m",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Define sea."}]},
            {"role": "assistant", "content": None, "tool_calls": [CALL], "reasoning": [{"text": "x"}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a large body of salt water"},
            {"role": "user", "content": "Thanks."},
        ],
        tools=[LOOKUP],
    )
    messages = chat_messages(request)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert (
        messages[0]["content"].startswith("Be brief.\n\n# Tools")
        and "- lookup: Look a word up." in messages[0]["content"]
    )
    assert json.loads(messages[2]["content"]) == {"tool": "lookup", "arguments": {"word": "sea"}}
    # The tool result and the next user message merge: templates may insist on alternating turns.
    assert messages[3]["content"] == "Result of lookup:\na large body of salt water\n\nThanks."


def test_without_tools_there_are_no_tool_instructions() -> None:
    request = LLMRequest(
        model="m", messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    )
    assert chat_messages(request) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_output_schema_offers_an_answer_unless_a_call_is_required() -> None:
    free = output_schema([LOOKUP], required=False)
    assert [list(option["properties"]) for option in free["anyOf"]] == [["answer"], ["tool", "arguments"]]
    forced = output_schema([LOOKUP], required=True)
    assert forced["properties"]["tool"] == {"const": "lookup"}
    assert forced["properties"]["arguments"]["additionalProperties"] is False
    assert output_schema([LOOKUP], required=True, strict=False)["properties"]["arguments"] == {
        "type": "object"
    }


def test_parse_output() -> None:
    content, calls = parse_output('{"tool": "lookup", "arguments": {"word": "sky"}}', [LOOKUP], required=True)
    assert content is None and [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("lookup", {"word": "sky"})
    ]
    assert parse_output('{"answer": "Hello"}', [LOOKUP], required=False) == ("Hello", [])
    # Cut off at max_tokens: an answer keeps what was written, a call that was demanded fails.
    assert parse_output('{"answer": "Hello, wor', [LOOKUP], required=False) == ("Hello, wor", [])
    with pytest.raises(LLMError, match="cut off"):
        parse_output('{"tool": "lookup", "argu', [LOOKUP], required=True)


def test_repeats_last_call() -> None:
    request = LLMRequest(model="m", messages=[{"role": "assistant", "content": None, "tool_calls": [CALL]}])
    assert repeats_last_call(request, LLMToolCall("c2", "lookup", '{"word":"sea"}'))
    assert not repeats_last_call(request, LLMToolCall("c2", "lookup", '{"word": "sky"}'))
    assert not repeats_last_call(LLMRequest(model="m", messages=[]), LLMToolCall("c2", "lookup", "{}"))


def test_images_are_refused() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(LLMError, match="cannot read images") as info:
        reject_images(LLMRequest(model="m", messages=[{"role": "user", "content": [image]}]))
    assert info.value.status_code == 400 and not info.value.retryable


def _kv_string(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(v)) + v


def test_gguf_context_length(tmp_path: Path) -> None:
    key = b"llama.context_length"
    tokens = b"tokenizer.ggml.tokens"
    body = (
        _kv_string("general.architecture", "llama")
        + struct.pack("<Q", len(tokens))
        + tokens
        + struct.pack("<IIQ", 9, 8, 2)  # an array of 2 strings
        + struct.pack("<Q", 1)
        + b"a"
        + struct.pack("<Q", 2)
        + b"bc"
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<II", 4, 4096)
    )
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 3) + body)
    assert gguf.context_length(path) == 4096
    (tmp_path / "x.gguf").write_bytes(b"nope")
    with pytest.raises(gguf.GGUFError):
        gguf.context_length(tmp_path / "x.gguf")
