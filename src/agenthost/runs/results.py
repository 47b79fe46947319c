"""A run's result: its messages (filtered as its request asked), stop reason and usage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db.rows import MessageRow, RunRow, StepRow
from agenthost.schemas.messages import LettaResponse, StopReasonOut, UsageOut
from agenthost.services.views import message_views

COMPACTION_TYPES = ("summary_message", "event_message")


def view_options(run: RunRow) -> dict[str, Any]:
    """How this run's messages are shown, from its stored ``request_config``."""
    config = run.request_config
    return {
        "include_types": config.get("include_return_message_types"),
        "use_assistant_message": config.get("use_assistant_message", True),
        "assistant_tool_name": config.get("assistant_message_tool_name") or "send_message",
        "assistant_tool_kwarg": config.get("assistant_message_tool_kwarg") or "message",
        # Compaction records are part of a run's output only when its request asked for them.
        "exclude_types": () if config.get("include_compaction_messages") else COMPACTION_TYPES,
    }


async def run_usage(session: AsyncSession, run_id: str) -> tuple[int, int, int, int]:
    """(prompt, completion, total tokens, step count) summed over the run's steps."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(StepRow.prompt_tokens), 0),
                func.coalesce(func.sum(StepRow.completion_tokens), 0),
                func.coalesce(func.sum(StepRow.total_tokens), 0),
                func.count(StepRow.seq),
            ).where(StepRow.run_id == run_id)
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


async def run_result(session: AsyncSession, run: RunRow) -> LettaResponse:
    rows = (
        await session.scalars(select(MessageRow).where(MessageRow.run_id == run.id).order_by(MessageRow.seq))
    ).all()
    # The client's own input is not part of what the agent answered.
    produced = [r for r in rows if r.message_type not in ("user_message", "system_message")]
    prompt, completion, total, steps = await run_usage(session, run.id)
    metadata = run.metadata_ or {}
    return LettaResponse(
        logprobs=metadata.get("logprobs"),
        turns=metadata.get("turns"),
        messages=message_views(produced, **view_options(run)),
        stop_reason=StopReasonOut(stop_reason=run.stop_reason or "error"),
        usage=UsageOut(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=total,
            step_count=steps,
            run_ids=[run.id],
        ),
    )
