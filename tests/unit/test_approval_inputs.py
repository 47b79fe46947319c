"""How a run's input answers (or collides with) the agent's pending approval, and how rows are shown."""

from __future__ import annotations

from typing import Any

import pytest

from agenthost.agent.messages import input_rows, new_message
from agenthost.db.rows import MessageRow, RunRow
from agenthost.services.views import message_views

CALLS = [
    {"name": "get_weather", "arguments": "{}", "tool_call_id": "c1"},
    {"name": "get_time", "arguments": "{}", "tool_call_id": "c2"},
]


def _pending() -> MessageRow:
    body = {"tool_call": CALLS[0], "tool_calls": CALLS, "_client_tool_names": ["get_weather", "get_time"]}
    return new_message("run-a", "agent-x", "approval_request_message", body, step_id="s1")


def _run() -> RunRow:
    return RunRow(id="run-b", agent_id="agent-x")


def _returns(*ids: str) -> dict[str, Any]:
    return {
        "type": "tool_return",
        "tool_returns": [{"tool_call_id": i, "status": "success", "tool_return": f"r-{i}"} for i in ids],
    }


def test_tool_returns_answer_every_pending_call() -> None:
    rows, approved = input_rows(_run(), [_returns("c1", "c2")], _pending())
    assert [r.message_type for r in rows] == [
        "approval_response_message",
        "tool_return_message",
        "tool_return_message",
    ]
    assert [r.body["tool_return"] for r in rows[1:]] == ["r-c1", "r-c2"]
    assert approved == []


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"type": "message", "role": "user", "content": "hi"}], "PENDING_APPROVAL"),
        ([_returns("c1")], "missing: \\['c2'\\]"),
        ([_returns("c1", "c2", "c9")], "'c9' is not pending"),
        (
            [
                {
                    "type": "approval",
                    "approvals": [{"type": "approval", "tool_call_id": "c1", "approve": True}],
                }
            ],
            "client-side",
        ),
    ],
)
def test_wrong_answers_are_rejected(inputs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        input_rows(_run(), inputs, _pending())


def test_an_answer_without_a_pending_request_is_rejected() -> None:
    with pytest.raises(ValueError, match="no pending approval"):
        input_rows(_run(), [_returns("c1")], None)


def test_denial_reason_reaches_the_tool_return() -> None:
    deny = {"type": "approval", "approve": False, "reason": "too risky"}
    rows, _ = input_rows(_run(), [deny], _pending())
    returns = [r for r in rows if r.message_type == "tool_return_message"]
    assert len(returns) == 2
    assert all(r.body["status"] == "error" and "too risky" in r.body["tool_return"] for r in returns)


def test_send_message_is_shown_as_assistant_message_and_private_keys_are_hidden() -> None:
    call = {"name": "send_message", "arguments": '{"message": "hello"}', "tool_call_id": "c1"}
    rows = [
        new_message("run-a", "agent-x", "tool_call_message", {"tool_call": call, "tool_calls": [call]}),
        _pending(),
    ]
    rows[0].seq, rows[1].seq = 1, 2
    shown = message_views(rows)
    assert shown[0]["message_type"] == "assistant_message" and shown[0]["content"] == "hello"
    assert "_client_tool_names" not in shown[1]
    raw = message_views(rows, use_assistant_message=False)
    assert raw[0]["message_type"] == "tool_call_message"
    assert message_views(rows, include_types=["approval_request_message"])[0]["id"] == rows[1].id
