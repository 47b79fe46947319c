"""How a run's input answers (or collides with) the agent's pending approval, and how rows are shown."""

from __future__ import annotations

from typing import Any

import pytest

from agenthost.agent.messages import input_messages, new_message
from agenthost.agent.persistence import StoredMessage
from agenthost.agent.run_request import RunRequest
from agenthost.db.messages import message_view
from agenthost.schemas.letta_messages import (
    ApprovalRequestMessage,
    ApprovalRequestMessageBody,
    AssistantMessage,
    ToolCall,
    ToolCallMessageBody,
)
from agenthost.services.views import shape_views

CALLS = [
    ToolCall(name="get_weather", arguments="{}", tool_call_id="c1"),
    ToolCall(name="get_time", arguments="{}", tool_call_id="c2"),
]
CLIENT_TOOLS = ["get_weather", "get_time"]


def _pending(legacy: bool = False) -> StoredMessage:
    if legacy:
        # As versions before the client_tool_names column stored it: the names inside the body.
        row = new_message("run-a", "agent-x", ApprovalRequestMessageBody.of(CALLS), step_id="s1")
        row.body = {**row.body, "_client_tool_names": CLIENT_TOOLS}
        return row
    return new_message(
        "run-a", "agent-x", ApprovalRequestMessageBody.of(CALLS), step_id="s1", client_tool_names=CLIENT_TOOLS
    )


def input_rows(
    inputs: list[dict[str, Any]], pending: StoredMessage | None
) -> tuple[list[StoredMessage], list[dict[str, Any]]]:
    """The messages of run ``run-b`` of agent ``agent-x`` with these inputs (as a request sends them)."""
    return input_messages("run-b", "agent-x", RunRequest.model_validate({"inputs": inputs}).inputs, pending)


def _returns(*ids: str) -> dict[str, Any]:
    return {
        "type": "tool_return",
        "tool_returns": [{"tool_call_id": i, "status": "success", "tool_return": f"r-{i}"} for i in ids],
    }


def test_tool_returns_answer_every_pending_call() -> None:
    rows, approved = input_rows([_returns("c1", "c2")], _pending())
    assert [r.message_type for r in rows] == [
        "approval_response_message",
        "tool_return_message",
        "tool_return_message",
    ]
    assert [r.body["tool_return"] for r in rows[1:]] == ["r-c1", "r-c2"]
    assert approved == []


def test_the_request_keeps_its_client_tools_out_of_its_body() -> None:
    pending = _pending()
    assert pending.client_tool_names == CLIENT_TOOLS
    assert set(pending.body) == {"tool_call", "tool_calls"}


@pytest.mark.parametrize("legacy", [False, True], ids=["column", "legacy-body"])
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
def test_wrong_answers_are_rejected(inputs: list[dict[str, Any]], message: str, legacy: bool) -> None:
    with pytest.raises(ValueError, match=message):
        input_rows(inputs, _pending(legacy))


def test_an_approved_server_tool_call_is_handed_to_the_loop() -> None:
    pending = new_message("run-a", "agent-x", ApprovalRequestMessageBody.of(CALLS[:1]), client_tool_names=[])
    approve = {"type": "approval", "approvals": [{"type": "approval", "tool_call_id": "c1", "approve": True}]}
    rows, approved = input_rows([approve], pending)
    assert [r.message_type for r in rows] == ["approval_response_message"]
    assert approved == [CALLS[0].model_dump()]


def test_an_answer_without_a_pending_request_is_rejected() -> None:
    with pytest.raises(ValueError, match="no pending approval"):
        input_rows([_returns("c1")], None)


def test_denial_reason_reaches_the_tool_return() -> None:
    deny = {"type": "approval", "approve": False, "reason": "too risky"}
    rows, _ = input_rows([deny], _pending())
    returns = [r for r in rows if r.message_type == "tool_return_message"]
    assert len(returns) == 2
    assert all(r.body["status"] == "error" and "too risky" in r.body["tool_return"] for r in returns)


def test_send_message_is_shown_as_assistant_message_and_private_keys_are_hidden() -> None:
    call = ToolCall(name="send_message", arguments='{"message": "hello"}', tool_call_id="c1")
    rows = [new_message("run-a", "agent-x", ToolCallMessageBody.of(call)), _pending(legacy=True)]
    rows[0].seq, rows[1].seq = 1, 2
    views = [message_view(r) for r in rows]
    shown = shape_views(views)
    assert isinstance(shown[0], AssistantMessage) and shown[0].content == "hello"
    assert isinstance(shown[1], ApprovalRequestMessage)
    assert "_client_tool_names" not in shown[1].model_dump_json()
    raw = shape_views(views, use_assistant_message=False)
    assert raw[0].message_type == "tool_call_message"
    assert shape_views(views, include_types=["approval_request_message"])[0].id == rows[1].id
