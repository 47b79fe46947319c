"""Message rows the loop writes, and how a run's input becomes rows.

A run's input is checked against the agent's pending approval here: a plain message cannot pass a
pending request, and an answer must cover every pending tool call.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, Protocol

from agenthost.db.rows import MessageRow, RunRow
from agenthost.db.types import utcnow
from agenthost.ids import new_id
from agenthost.schemas.content import TextContent, ToolReturnPart
from agenthost.schemas.letta_messages import (
    ApprovalRequestMessageBody,
    ApprovalResponseMessageBody,
    AssistantMessageBody,
    MessageBody,
    SystemMessageBody,
    ToolCall,
    ToolReturn,
    ToolReturnMessageBody,
    UserMessageBody,
)

_INPUT_BODIES: dict[str, type[UserMessageBody | SystemMessageBody | AssistantMessageBody]] = {
    "user": UserMessageBody,
    "system": SystemMessageBody,
    "assistant": AssistantMessageBody,
}


class PendingRequest(Protocol):
    """The pending approval_request_message (an ORM row or a Core row with these columns)."""

    id: str
    body: dict[str, Any]
    client_tool_names: list[str] | None


def new_message(
    run: RunRow | str,
    agent_id: str,
    body: MessageBody,
    *,
    step_id: str | None = None,
    otid: str | None = None,
    is_err: bool = False,
    created_at: datetime | None = None,
    message_id: str | None = None,
    client_tool_names: list[str] | None = None,
) -> MessageRow:
    """The row of a message of ``body``'s type."""
    return MessageRow(
        id=message_id or new_id("message"),
        agent_id=agent_id,
        run_id=run if isinstance(run, str) else run.id,
        step_id=step_id,
        message_type=body.kind,
        otid=otid,
        body=body.stored(),
        is_err=is_err,
        created_at=created_at or utcnow(),
        client_tool_names=client_tool_names,
    )


def client_tool_names(pending: PendingRequest) -> set[str]:
    """Which of an approval request's calls are client-side tools."""
    if pending.client_tool_names is not None:
        return set(pending.client_tool_names)
    # Rows written before the column existed kept the names inside the body.
    return set(pending.body.get("_client_tool_names") or ())


def input_rows(
    run: RunRow, inputs: list[dict[str, Any]], pending: PendingRequest | None
) -> tuple[list[MessageRow], list[dict[str, Any]]]:
    """The rows a run's input becomes, checked against the agent's pending approval (if any)."""
    rows: list[MessageRow] = []
    approved: list[dict[str, Any]] = []
    answers_approval = any(m.get("type") in ("approval", "tool_return") for m in inputs)
    if pending is not None and not answers_approval:
        raise ValueError(
            f"PENDING_APPROVAL: the agent is waiting for an answer to approval request '{pending.id}'"
        )
    if pending is None and answers_approval:
        raise ValueError("this run answers an approval, but the agent has no pending approval request")
    pending_calls: dict[str, ToolCall] = {}
    client_tools: set[str] = set()
    if pending is not None:
        request = ApprovalRequestMessageBody.model_validate(pending.body)
        pending_calls = {c.tool_call_id: c for c in request.calls()}
        client_tools = client_tool_names(pending)
    answered: set[str] = set()
    for message in inputs:
        kind = message.get("type") or "message"
        if kind == "message":
            body = _INPUT_BODIES[message["role"]].model_validate(
                {
                    "content": message["content"],
                    "name": message.get("name"),
                    "sender_id": message.get("sender_id"),
                }
            )
            rows.append(new_message(run, run.agent_id, body, otid=message.get("otid")))
            continue
        response = ApprovalResponseMessageBody.model_validate(
            {
                "approvals": _approval_items(message, list(pending_calls)),
                "approve": message.get("approve"),
                "approval_request_id": message.get("approval_request_id")
                or (pending.id if pending else None),
                "reason": message.get("reason"),
            }
        )
        rows.append(new_message(run, run.agent_id, response, otid=message.get("otid")))
        for item in response.approvals or ():
            call_id = item.tool_call_id
            if call_id not in pending_calls:
                raise ValueError(f"tool_call_id '{call_id}' is not pending approval")
            if call_id in answered:
                raise ValueError(f"tool_call_id '{call_id}' is answered twice")
            answered.add(call_id)
            call = pending_calls[call_id]
            if isinstance(item, ToolReturn):
                rows.append(
                    _tool_return_row(
                        run, call, item.status, _return_text(item.tool_return), item.stdout, item.stderr
                    )
                )
            elif item.approve:
                if call.name in client_tools:
                    raise ValueError(
                        f"'{call.name}' is a client-side tool: answer it with its tool return, "
                        "not an approval"
                    )
                # The loop runs approved calls as the dicts it runs an LLM response's calls as.
                approved.append(call.model_dump())
            else:
                reason = item.reason
                text = "The user denied this tool call." + (f" Reason: {reason}" if reason else "")
                rows.append(_tool_return_row(run, call, "error", text, None, None))
    missing = set(pending_calls) - answered
    if pending is not None and missing:
        raise ValueError(f"every pending tool call must be answered together; missing: {sorted(missing)}")
    return rows, approved


def _approval_items(message: dict[str, Any], pending_ids: list[str]) -> list[dict[str, Any]]:
    if message.get("type") == "tool_return":
        return [dict(r, type="tool") for r in message["tool_returns"]]
    if message.get("approvals"):
        return list(message["approvals"])
    # Legacy form: one approve/deny for every pending call.
    return [
        {
            "type": "approval",
            "tool_call_id": cid,
            "approve": bool(message.get("approve")),
            "reason": message.get("reason"),
        }
        for cid in pending_ids
    ]


def _return_text(value: str | list[ToolReturnPart]) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(
        p.text if isinstance(p, TextContent) else json.dumps(p.model_dump(mode="json", exclude_none=True))
        for p in value
    )


def _tool_return_row(
    run: RunRow,
    call: ToolCall,
    status: Literal["success", "error"],
    text: str,
    stdout: list[str] | None,
    stderr: list[str] | None,
) -> MessageRow:
    return new_message(
        run,
        run.agent_id,
        ToolReturnMessageBody.of(call.tool_call_id, call.name, status, text, stdout, stderr),
        is_err=status == "error",
    )
