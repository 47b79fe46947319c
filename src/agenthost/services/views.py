"""Letta messages as a request asked to see them: the legacy send_message call as an assistant message,
filtered by type (shared by the message lists, run results and streams)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from agenthost.schemas.letta_messages import (
    AssistantMessage,
    LettaMessage,
    ToolCallMessage,
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
    """Letta messages as the SDK parses them, filtered by ``include_return_message_types``.

    A call of the legacy ``send_message`` tool is shown as the ``assistant_message`` it stands for
    when ``use_assistant_message`` is on, as Letta's legacy agents do.
    """
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
