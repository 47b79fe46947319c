"""A run's result: its messages (filtered as its request asked), stop reason and usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agenthost.db import runs as runs_db
from agenthost.db.database import Session
from agenthost.db.runs import RunRecord
from agenthost.schemas.letta_messages import INPUT_TYPES
from agenthost.schemas.messages import LettaResponse, StopReasonOut, UsageOut
from agenthost.services.views import shape_views

COMPACTION_TYPES = ("summary_message", "event_message")


def view_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """How a run's messages are shown, from its stored ``request_config``."""
    return {
        "include_types": config.get("include_return_message_types"),
        "use_assistant_message": config.get("use_assistant_message", True),
        "assistant_tool_name": config.get("assistant_message_tool_name") or "send_message",
        "assistant_tool_kwarg": config.get("assistant_message_tool_kwarg") or "message",
        # Compaction records are part of a run's output only when its request asked for them.
        "exclude_types": () if config.get("include_compaction_messages") else COMPACTION_TYPES,
    }


async def run_result(session: Session, run: RunRecord) -> LettaResponse:
    """What the run answered: its messages but the client's own input, its stop reason and usage."""
    produced = await runs_db.produced_messages(session, run.id, skip_types=INPUT_TYPES)
    usage = await runs_db.run_usage(session, run.id)
    metadata = run.metadata or {}
    return LettaResponse(
        logprobs=metadata.get("logprobs"),
        turns=metadata.get("turns"),
        messages=shape_views(produced, **view_options(run.request_config)),
        stop_reason=StopReasonOut(stop_reason=run.stop_reason or "error"),
        usage=UsageOut(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            step_count=usage.step_count,
            run_ids=[run.id],
        ),
    )
