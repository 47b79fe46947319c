"""The messages the loop writes, and how a run's input becomes messages.

A run's input is checked against the agent's pending approval here: a plain message cannot pass a
pending request, and an answer must cover every pending tool call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from agenthost.agent.persistence import StoredMessage
from agenthost.ids import new_id
from agenthost.schemas.content import TextContent, ToolReturnPart
from agenthost.schemas.letta_messages import (
    ApprovalRequestMessageBody,
    ApprovalResponseMessageBody,
    ApprovalReturn,
    AssistantMessageBody,
    MessageBody,
    SystemMessageBody,
    ToolCall,
    ToolReturn,
    ToolReturnMessageBody,
    UserMessageBody,
)
from agenthost.schemas.messages import (
    ApprovalCreate,
    InputMessage,
    MessageCreate,
    MessageToolReturnCreate,
)

_INPUT_BODIES: dict[str, type[UserMessageBody | SystemMessageBody | AssistantMessageBody]] = {
    "user": UserMessageBody,
    "system": SystemMessageBody,
    "assistant": AssistantMessageBody,
}


class PendingRequest(Protocol):
    """The pending approval_request_message (a stored message, or a row with these columns)."""

    id: str
    body: dict[str, Any]
    client_tool_names: list[str] | None


def new_message(
    run_id: str,
    agent_id: str,
    body: MessageBody,
    *,
    step_id: str | None = None,
    otid: str | None = None,
    is_err: bool = False,
    created_at: datetime | None = None,
    message_id: str | None = None,
    client_tool_names: list[str] | None = None,
) -> StoredMessage:
    """A new message of ``body``'s type."""
    return StoredMessage(
        id=message_id or new_id("message"),
        agent_id=agent_id,
        run_id=run_id,
        step_id=step_id,
        message_type=body.kind,
        otid=otid,
        body=body.stored(),
        is_err=is_err,
        created_at=created_at or datetime.now(UTC),
        client_tool_names=client_tool_names,
    )


def client_tool_names(pending: PendingRequest) -> set[str]:
    """Which of an approval request's calls are client-side tools."""
    if pending.client_tool_names is not None:
        return set(pending.client_tool_names)
    # Rows written before the column existed kept the names inside the body.
    return set(pending.body.get("_client_tool_names") or ())


def input_messages(
    run_id: str, agent_id: str, inputs: Sequence[InputMessage], pending: PendingRequest | None
) -> tuple[list[StoredMessage], list[dict[str, Any]]]:
    """The messages a run's input becomes, checked against the thread's pending approval (if any), and
    the server-side tool calls the input approved (run before the run's first LLM call)."""
    messages: list[StoredMessage] = []
    approved: list[dict[str, Any]] = []
    answers_approval = any(not isinstance(m, MessageCreate) for m in inputs)
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

    def tool_return(call: ToolCall, status: Literal["success", "error"], text: str, **out: Any) -> None:
        body = ToolReturnMessageBody.of(call.tool_call_id, call.name, status, text, **out)
        messages.append(new_message(run_id, agent_id, body, is_err=status == "error"))

    answered: set[str] = set()
    for message in inputs:
        if isinstance(message, MessageCreate):
            body = _INPUT_BODIES[message.role](
                content=message.content, name=message.name, sender_id=message.sender_id
            )
            messages.append(new_message(run_id, agent_id, body, otid=message.otid))
            continue
        response = ApprovalResponseMessageBody(
            approvals=_approval_items(message, list(pending_calls)),
            approve=message.approve if isinstance(message, ApprovalCreate) else None,
            approval_request_id=(message.approval_request_id if isinstance(message, ApprovalCreate) else None)
            or (pending.id if pending else None),
            reason=message.reason if isinstance(message, ApprovalCreate) else None,
        )
        messages.append(new_message(run_id, agent_id, response, otid=message.otid))
        for item in response.approvals or ():
            call_id = item.tool_call_id
            if call_id not in pending_calls:
                raise ValueError(f"tool_call_id '{call_id}' is not pending approval")
            if call_id in answered:
                raise ValueError(f"tool_call_id '{call_id}' is answered twice")
            answered.add(call_id)
            call = pending_calls[call_id]
            if isinstance(item, ToolReturn):
                text = _return_text(item.tool_return)
                tool_return(call, item.status, text, stdout=item.stdout, stderr=item.stderr)
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
                tool_return(
                    call,
                    "error",
                    "The user denied this tool call." + (f" Reason: {reason}" if reason else ""),
                )
    missing = set(pending_calls) - answered
    if pending is not None and missing:
        raise ValueError(f"every pending tool call must be answered together; missing: {sorted(missing)}")
    return messages, approved


def _approval_items(
    message: ApprovalCreate | MessageToolReturnCreate, pending_ids: list[str]
) -> list[ApprovalReturn | ToolReturn]:
    if isinstance(message, MessageToolReturnCreate):
        return list(message.tool_returns)
    if message.approvals:
        return list(message.approvals)
    # Legacy form: one approve/deny for every pending call.
    return [
        ApprovalReturn(tool_call_id=cid, approve=bool(message.approve), reason=message.reason)
        for cid in pending_ids
    ]


def _return_text(value: str | list[ToolReturnPart]) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(
        p.text if isinstance(p, TextContent) else json.dumps(p.model_dump(mode="json", exclude_none=True))
        for p in value
    )
