"""Row → wire conversions shared by several services (messages, runs, steps, blocks)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from agenthost.db.rows import BlockRow, MessageRow, RunRow, StepRow
from agenthost.schemas.blocks import Block
from agenthost.schemas.letta_messages import (
    LETTA_MESSAGE,
    ApprovalRequestMessage,
    AssistantMessage,
    LettaMessage,
    ToolCallMessage,
)
from agenthost.schemas.runs import RequestConfig, Run, Step

# The client's own input: part of a run's messages, not of what the agent answered (streams, logs).
INPUT_TYPES = ("user_message", "system_message")


def block_view(row: BlockRow) -> Block:
    return Block(
        id=row.id,
        label=row.label,
        value=row.value,
        limit=row.limit,
        description=row.description,
        read_only=row.read_only,
        metadata=row.metadata_,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def run_view(row: RunRow) -> Run:
    return Run(
        id=row.id,
        agent_id=row.agent_id,
        conversation_id=row.conversation_id,
        status=row.status,
        stop_reason=row.stop_reason,
        background=row.background,
        request_config=RequestConfig.model_validate(row.request_config),
        metadata=row.metadata_,
        callback_url=row.callback_url,
        callback_sent_at=row.callback_sent_at,
        callback_status_code=row.callback_status_code,
        callback_error=row.callback_error,
        ttft_ns=row.ttft_ns,
        total_duration_ns=row.total_duration_ns,
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


def step_view(row: StepRow) -> Step:
    return Step(
        id=row.id,
        run_id=row.run_id,
        agent_id=row.agent_id,
        model=row.model,
        model_handle=row.model_handle,
        model_endpoint=row.model_endpoint,
        provider_name=row.provider_name,
        context_window_limit=row.context_window_limit,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        total_tokens=row.total_tokens,
        cached_input_tokens=row.cached_input_tokens,
        reasoning_tokens=row.reasoning_tokens,
        status=row.status,
        stop_reason=row.stop_reason,
        error_type=row.error_type,
        error_data=row.error_data,
        created_at=row.created_at,
    )


def message_views(
    rows: Iterable[MessageRow],
    *,
    include_types: Sequence[str] | None = None,
    exclude_types: Sequence[str] = (),
    use_assistant_message: bool = True,
    assistant_tool_name: str = "send_message",
    assistant_tool_kwarg: str = "message",
) -> list[LettaMessage]:
    """Letta messages as the SDK parses them, filtered by ``include_return_message_types``.

    A call of the legacy ``send_message`` tool is shown as the ``assistant_message`` it stands for
    when ``use_assistant_message`` is on, as Letta's legacy agents do.
    """
    return shape_views(
        (message_view(row) for row in rows),
        include_types=include_types,
        exclude_types=exclude_types,
        use_assistant_message=use_assistant_message,
        assistant_tool_name=assistant_tool_name,
        assistant_tool_kwarg=assistant_tool_kwarg,
    )


def shape_views(
    items: Iterable[LettaMessage],
    *,
    include_types: Sequence[str] | None = None,
    exclude_types: Sequence[str] = (),
    use_assistant_message: bool = True,
    assistant_tool_name: str = "send_message",
    assistant_tool_kwarg: str = "message",
) -> list[LettaMessage]:
    """``message_views`` for messages already in their wire shape (a run's logged events)."""
    allowed = set(include_types) if include_types is not None else None
    out: list[LettaMessage] = []
    for item in items:
        if (
            use_assistant_message
            and isinstance(item, ToolCallMessage)
            and item.tool_call.name == assistant_tool_name
        ):
            item = _as_assistant(item, assistant_tool_kwarg)
        if allowed is not None and item.message_type not in allowed:
            continue
        if item.message_type in exclude_types:
            continue
        out.append(item)
    return out


def message_view(row: MessageRow) -> LettaMessage:
    """The message a row stores, read with the model of its type."""
    return LETTA_MESSAGE.validate_python(_fields(row))


def pending_approval_view(row: MessageRow) -> ApprovalRequestMessage:
    """The agent's pending approval request (``AgentState.pending_approval``)."""
    return ApprovalRequestMessage.model_validate(_fields(row))


def _fields(row: MessageRow) -> dict[str, object]:
    return {
        **row.body,
        "id": row.id,
        "date": row.created_at,
        "message_type": row.message_type,
        "otid": row.otid,
        "run_id": row.run_id,
        "step_id": row.step_id,
        "is_err": row.is_err or None,
        "seq_id": row.seq,
    }


def _as_assistant(item: ToolCallMessage, kwarg: str) -> LettaMessage:
    try:
        args = json.loads(item.tool_call.arguments or "{}")
    except json.JSONDecodeError:
        return item
    if not isinstance(args, dict) or kwarg not in args:
        return item
    return AssistantMessage(
        id=item.id,
        date=item.date,
        otid=item.otid,
        run_id=item.run_id,
        step_id=item.step_id,
        is_err=item.is_err,
        seq_id=item.seq_id,
        content=str(args[kwarg]),
    )
