"""Rebuilding the provider's chat messages from stored Letta messages."""

from __future__ import annotations

from typing import Any, Literal

from agenthost.agent.context import llm_messages
from agenthost.db.rows import MessageRow
from agenthost.db.types import utcnow
from agenthost.ids import new_id
from agenthost.schemas.letta_messages import ToolReturnMessageBody


def _row(kind: str, body: dict[str, Any], step: str | None = None) -> MessageRow:
    """A row as stored: ``body`` is the JSON of the messages table."""
    return MessageRow(
        id=new_id("message"),
        agent_id="agent-x",
        run_id="run-x",
        step_id=step,
        message_type=kind,
        body=body,
        is_err=False,
        created_at=utcnow(),
    )


def tool_return_body(
    call_id: str, name: str, status: Literal["success", "error"], text: str
) -> dict[str, Any]:
    return ToolReturnMessageBody.of(call_id, name, status, text).stored()


def test_one_llm_response_is_merged_back_into_one_assistant_message() -> None:
    call = {"name": "memory_insert", "arguments": '{"label": "human"}', "tool_call_id": "c1"}
    rows = [
        _row("user_message", {"content": "hi"}),
        _row("reasoning_message", {"reasoning": "thinking"}, "s1"),
        _row("assistant_message", {"content": "let me note that"}, "s1"),
        _row("tool_call_message", {"tool_call": call, "tool_calls": [call]}, "s1"),
        _row("tool_return_message", tool_return_body("c1", "memory_insert", "success", "done"), "s1"),
        _row("assistant_message", {"content": "noted"}, "s2"),
    ]
    assert llm_messages(rows) == [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "let me note that",
            "reasoning": [{"text": "thinking", "signature": None}],
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "memory_insert", "arguments": '{"label": "human"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "assistant", "content": "noted"},
    ]


def test_approval_request_calls_stay_with_the_response_that_made_them() -> None:
    server_call = {"name": "conversation_search", "arguments": "{}", "tool_call_id": "c1"}
    client_call = {"name": "get_weather", "arguments": "{}", "tool_call_id": "c2"}
    rows = [
        _row("tool_call_message", {"tool_call": server_call, "tool_calls": [server_call]}, "s1"),
        _row("approval_request_message", {"tool_call": client_call, "tool_calls": [client_call]}, "s1"),
        _row("tool_return_message", tool_return_body("c1", "conversation_search", "success", "none"), "s1"),
        _row("approval_response_message", {"approvals": []}),
        _row("tool_return_message", tool_return_body("c2", "get_weather", "success", "sunny")),
    ]
    out = llm_messages(rows)
    assert [m["role"] for m in out] == ["assistant", "tool", "tool"]
    assert [c["id"] for c in out[0]["tool_calls"]] == ["c1", "c2"]


def test_user_content_parts_become_openai_parts() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk="}},
    ]
    (message,) = llm_messages([_row("user_message", {"content": content})])
    assert message["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
    ]


def test_tool_results_without_their_call_are_left_out() -> None:
    rows = [
        _row("user_message", {"content": "hi"}),
        _row("tool_return_message", tool_return_body("gone", "get_weather", "success", "sunny")),
        _row("assistant_message", {"content": "hello"}, "s1"),
    ]
    assert [m["role"] for m in llm_messages(rows)] == ["user", "assistant"]


def test_signed_and_redacted_reasoning_go_back_with_their_response() -> None:
    rows = [
        _row("user_message", {"content": "hi"}),
        _row("reasoning_message", {"reasoning": "weigh it", "signature": "sig-1"}, "s1"),
        _row("hidden_reasoning_message", {"state": "redacted", "hidden_reasoning": "opaque"}, "s1"),
        _row("assistant_message", {"content": "hello"}, "s1"),
        _row("user_message", {"content": "again"}),
    ]
    assert llm_messages(rows)[1] == {
        "role": "assistant",
        "content": "hello",
        "reasoning": [{"text": "weigh it", "signature": "sig-1"}, {"redacted": "opaque"}],
    }
