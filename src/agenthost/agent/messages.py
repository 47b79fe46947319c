"""Message rows the loop writes, and how a run's input becomes rows.

A run's input is checked against the agent's pending approval here: a plain message cannot pass a
pending request, and an answer must cover every pending tool call.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from agenthost.db.rows import MessageRow, RunRow
from agenthost.db.types import utcnow
from agenthost.ids import new_id


class PendingRequest(Protocol):
    """The pending approval_request_message (an ORM row or a Core row with these columns)."""

    id: str
    body: dict[str, Any]


def new_message(
    run: RunRow | str,
    agent_id: str,
    message_type: str,
    body: dict[str, Any],
    *,
    step_id: str | None = None,
    otid: str | None = None,
    is_err: bool = False,
    created_at: datetime | None = None,
    message_id: str | None = None,
) -> MessageRow:
    return MessageRow(
        id=message_id or new_id("message"),
        agent_id=agent_id,
        run_id=run if isinstance(run, str) else run.id,
        step_id=step_id,
        message_type=message_type,
        otid=otid,
        body=body,
        is_err=is_err,
        created_at=created_at or utcnow(),
    )


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
    pending_calls = {c["tool_call_id"]: c for c in (pending.body.get("tool_calls") or [])} if pending else {}
    client_tools = set(pending.body.get("_client_tool_names", [])) if pending else set()
    answered: set[str] = set()
    for message in inputs:
        kind = message.get("type") or "message"
        if kind == "message":
            role = message["role"]
            mtype = {"user": "user_message", "system": "system_message", "assistant": "assistant_message"}[
                role
            ]
            body = {
                "content": message["content"],
                "name": message.get("name"),
                "sender_id": message.get("sender_id"),
            }
            rows.append(new_message(run, run.agent_id, mtype, body, otid=message.get("otid")))
            continue
        returns = _approval_items(message, list(pending_calls))
        rows.append(
            new_message(
                run,
                run.agent_id,
                "approval_response_message",
                {
                    "approvals": returns,
                    "approve": message.get("approve"),
                    "approval_request_id": message.get("approval_request_id")
                    or (pending.id if pending else None),
                    "reason": message.get("reason"),
                },
                otid=message.get("otid"),
            )
        )
        for item in returns:
            call_id = item["tool_call_id"]
            if call_id not in pending_calls:
                raise ValueError(f"tool_call_id '{call_id}' is not pending approval")
            if call_id in answered:
                raise ValueError(f"tool_call_id '{call_id}' is answered twice")
            answered.add(call_id)
            call = pending_calls[call_id]
            if item.get("type") == "tool":
                rows.append(
                    _tool_return_row(
                        run,
                        call,
                        item["status"],
                        _return_text(item["tool_return"]),
                        item.get("stdout"),
                        item.get("stderr"),
                    )
                )
            elif item.get("approve"):
                if call["name"] in client_tools:
                    raise ValueError(
                        f"'{call['name']}' is a client-side tool: answer it with its tool return, "
                        "not an approval"
                    )
                approved.append(call)
            else:
                reason = item.get("reason")
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


def _return_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(p.get("text", "") if p.get("type") == "text" else json.dumps(p) for p in value)


def _tool_return_row(
    run: RunRow,
    call: dict[str, Any],
    status: str,
    text: str,
    stdout: list[str] | None,
    stderr: list[str] | None,
) -> MessageRow:
    return new_message(
        run,
        run.agent_id,
        "tool_return_message",
        tool_return_body(call["tool_call_id"], call["name"], status, text, stdout, stderr),
        is_err=status == "error",
    )


def tool_return_body(
    call_id: str,
    name: str,
    status: str,
    text: str,
    stdout: list[str] | None = None,
    stderr: list[str] | None = None,
) -> dict[str, Any]:
    ret = {"tool_call_id": call_id, "status": status, "tool_return": text, "stdout": stdout, "stderr": stderr}
    return {**ret, "name": name, "tool_returns": [{**ret, "type": "tool"}]}
