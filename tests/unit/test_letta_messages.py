"""Every message type we write, stored and served: it round-trips through ``LettaMessage`` and parses as
the SDK's type of the same name; bodies stored by earlier versions still read."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from letta_client.types.steps.message_list_response import MessageListResponse
from pydantic import TypeAdapter

from agenthost.agent.messages import input_messages, new_message
from agenthost.agent.persistence import StoredMessage
from agenthost.agent.run_request import RunRequest
from agenthost.db.messages import message_view
from agenthost.db.rows import MessageRow
from agenthost.db.types import utcnow
from agenthost.ids import new_id
from agenthost.schemas.common import MessageType
from agenthost.schemas.letta_messages import (
    BODY_CLASSES,
    LETTA_MESSAGE,
    LETTA_MESSAGES,
    ApprovalRequestMessageBody,
    AssistantMessageBody,
    CompactionStats,
    EventMessageBody,
    HiddenReasoningMessageBody,
    ReasoningMessageBody,
    SummaryMessageBody,
    ToolCall,
    ToolCallMessageBody,
    ToolReturnMessageBody,
)

SDK_MESSAGE: TypeAdapter[Any] = TypeAdapter(MessageListResponse)
CALL = ToolCall(name="get_weather", arguments='{"city": "Oslo"}', tool_call_id="c1")
STATS = CompactionStats(
    trigger="context_window",
    context_window=8192,
    messages_count_before=40,
    messages_count_after=12,
    context_tokens_before=None,
    context_tokens_after=900,
)


def _inputs(*inputs: dict[str, object]) -> list[Any]:
    return list(RunRequest.model_validate({"inputs": list(inputs)}).inputs)


def _written_rows() -> list[StoredMessage]:
    """One message of each type, built as the code that writes it builds it."""
    run = "run-a"
    user, system, assistant = input_messages(
        run,
        "agent-x",
        _inputs(
            {"type": "message", "role": "user", "content": "hi", "otid": "o-1"},
            {"type": "message", "role": "system", "content": "be brief"},
            {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "earlier"}]},
        ),
        None,
    )[0]
    request = new_message(run, "agent-x", ApprovalRequestMessageBody.of([CALL]), client_tool_names=["x"])
    answer, tool_return = input_messages(
        run,
        "agent-x",
        _inputs(
            {
                "type": "tool_return",
                "tool_returns": [{"tool_call_id": "c1", "status": "success", "tool_return": "9"}],
            }
        ),
        request,
    )[0]
    return [
        user,
        system,
        assistant,
        new_message(
            run, "agent-x", ReasoningMessageBody(reasoning="hm", source="reasoner_model"), step_id="s"
        ),
        new_message(run, "agent-x", HiddenReasoningMessageBody(state="redacted", hidden_reasoning="opaque")),
        new_message(run, "agent-x", AssistantMessageBody(content="sunny"), step_id="s"),
        new_message(run, "agent-x", ToolCallMessageBody.of(CALL), step_id="s"),
        new_message(
            run, "agent-x", ToolReturnMessageBody.of("c1", "get_weather", "error", "boom"), is_err=True
        ),
        request,
        answer,
        tool_return,
        new_message(run, "agent-x", SummaryMessageBody(summary="they talked", compaction_stats=STATS)),
        new_message(run, "agent-x", EventMessageBody(event_type="compaction", event_data=STATS.model_dump())),
    ]


def test_every_message_type_has_a_model() -> None:
    assert set(BODY_CLASSES) == set(get_args(MessageType))
    assert {r.message_type for r in _written_rows()} == set(get_args(MessageType))


@pytest.mark.parametrize("row", _written_rows(), ids=lambda r: r.message_type)
def test_a_written_message_round_trips_and_parses_as_the_sdk_type(row: StoredMessage) -> None:
    row.seq = 7
    view = message_view(row)
    assert view.message_type == row.message_type
    assert (view.id, view.run_id, view.seq_id, view.otid) == (row.id, row.run_id, 7, row.otid)
    assert view.is_err is (True if row.is_err else None)
    served = json.loads(LETTA_MESSAGES.dump_json([view]))[0]
    assert LETTA_MESSAGE.validate_python(served) == view
    sdk = SDK_MESSAGE.validate_python(served)
    assert type(sdk).__name__ == type(view).__name__
    assert sdk.message_type == row.message_type
    # The stored body is the served message minus its envelope, under the same keys.
    assert set(row.body) <= set(served)
    # Bookkeeping never reaches the wire.
    assert not any(key.startswith("_") or key == "client_tool_names" for key in served)


# Bodies as versions before the typed models stored them (every key they wrote, nulls included).
_LEGACY: list[tuple[MessageType, dict[str, Any]]] = [
    ("user_message", {"content": "hi", "name": None, "sender_id": None}),
    ("reasoning_message", {"reasoning": "hm", "source": "reasoner_model", "signature": None}),
    ("hidden_reasoning_message", {"state": "redacted", "hidden_reasoning": "opaque"}),
    ("assistant_message", {"content": "sunny"}),
    ("tool_call_message", {"tool_call": CALL.model_dump(), "tool_calls": [CALL.model_dump()]}),
    (
        "approval_request_message",
        {
            "tool_call": CALL.model_dump(),
            "tool_calls": [CALL.model_dump()],
            "_client_tool_names": ["get_weather"],
        },
    ),
    (
        "tool_return_message",
        {
            "tool_call_id": "c1",
            "status": "success",
            "tool_return": "9",
            "stdout": None,
            "stderr": None,
            "name": "get_weather",
            "tool_returns": [
                {
                    "tool_call_id": "c1",
                    "status": "success",
                    "tool_return": "9",
                    "stdout": None,
                    "stderr": None,
                    "type": "tool",
                }
            ],
        },
    ),
    (
        "approval_response_message",
        {
            "approvals": [{"type": "approval", "tool_call_id": "c1", "approve": True}],
            "approve": None,
            "approval_request_id": "message-1",
            "reason": None,
        },
    ),
    ("summary_message", {"summary": "they talked", "compaction_stats": STATS.model_dump()}),
    ("event_message", {"event_type": "compaction", "event_data": STATS.model_dump()}),
]


@pytest.mark.parametrize(("kind", "body"), _LEGACY, ids=[k for k, _ in _LEGACY])
def test_bodies_stored_by_earlier_versions_still_read(kind: MessageType, body: dict[str, Any]) -> None:
    row = MessageRow(
        id=new_id("message"),
        agent_id="agent-x",
        run_id="run-a",
        message_type=kind,
        body=body,
        is_err=False,
        created_at=utcnow(),
        seq=1,
    )
    served = json.loads(LETTA_MESSAGES.dump_json([message_view(row)]))[0]
    # Served as stored (fields the old body left out are served as their defaults).
    assert _contains(served, {k: v for k, v in body.items() if not k.startswith("_")})
    assert "_client_tool_names" not in served
    assert type(SDK_MESSAGE.validate_python(served)).__name__ == type(message_view(row)).__name__


def _contains(served: Any, stored: Any) -> bool:
    if isinstance(stored, dict):
        return isinstance(served, dict) and all(
            k in served and _contains(served[k], v) for k, v in stored.items()
        )
    if isinstance(stored, list):
        return (
            isinstance(served, list)
            and len(served) == len(stored)
            and all(_contains(a, b) for a, b in zip(served, stored, strict=True))
        )
    return bool(served == stored)
