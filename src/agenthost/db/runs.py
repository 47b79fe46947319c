"""Runs and steps as the API shows them (row → wire)."""

from __future__ import annotations

from agenthost.db.rows import RunRow, StepRow
from agenthost.schemas.runs import RequestConfig, Run, Step


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
