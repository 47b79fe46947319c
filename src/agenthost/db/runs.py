"""Queries on runs and their steps: reading them back (row → wire), inserting a new one, and the facts
the run use cases decide on (a thread's queue, its active runs, a run's messages and usage).

A run's status is written only by ``db/run_lifecycle.py``; ``insert_run`` goes through its ``create_run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from agenthost.db.messages import message_view
from agenthost.db.pagination import paginate
from agenthost.db.rows import MessageRow, RunKeyRow, RunRow, StepRow
from agenthost.db.run_lifecycle import ACTIVE, RUN_COLUMNS, RunStatus, create_run
from agenthost.errors import NotFound
from agenthost.ids import check_id
from agenthost.pages import Page
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.schemas.runs import RequestConfig, Run, Step
from agenthost.thread import Thread


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as its use cases read it: its outcome, and what its request asked for that the wire view
    leaves out (all of ``request_config``, whether it logs token events, its pending callback)."""

    id: str
    agent_id: str
    conversation_id: str | None
    status: str
    stop_reason: str | None
    completed_at: datetime | None
    metadata: dict[str, Any] | None
    request_config: dict[str, Any]
    token_events: bool
    callback_url: str | None
    callback_pending: bool


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """A run's token usage summed over its steps."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    step_count: int


def _queued(conversation: bool) -> Select[int]:
    # Counts at most `cap` queued runs (a capped subquery: the check costs the same however long the queue).
    return select(func.count()).select_from(
        select(RunRow.seq)
        .where(
            RunRow.agent_id == bindparam("aid"),
            _lane(conversation, bindparam("cid")),
            RunRow.status == RunStatus.CREATED.value,
        )
        .limit(bindparam("cap"))
        .subquery()
    )


def _lane(conversation: bool, conversation_id: Any) -> ColumnElement[bool]:
    return RunRow.conversation_id == conversation_id if conversation else RunRow.conversation_id.is_(None)


_QUEUED = {c: _queued(c) for c in (False, True)}
_USAGE = select(
    func.coalesce(func.sum(StepRow.prompt_tokens), 0),
    func.coalesce(func.sum(StepRow.completion_tokens), 0),
    func.coalesce(func.sum(StepRow.total_tokens), 0),
    func.count(StepRow.seq),
).where(StepRow.run_id == bindparam("rid"))


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


def _record(row: RunRow) -> RunRecord:
    return RunRecord(
        id=row.id,
        agent_id=row.agent_id,
        conversation_id=row.conversation_id,
        status=row.status,
        stop_reason=row.stop_reason,
        completed_at=row.completed_at,
        metadata=row.metadata_,
        request_config=row.request_config,
        token_events=bool(row.request.get("token_events")),
        callback_url=row.callback_url,
        callback_pending=row.callback_pending,
    )


# -- one run -------------------------------------------------------------------------------------


async def _row(session: AsyncSession, run_id: str, *, for_update: bool = False) -> RunRow:
    check_id(run_id, "run")
    stmt = select(RunRow).where(RunRow.id == run_id)
    if for_update:
        stmt = stmt.with_for_update()
    run = await session.scalar(stmt)
    if run is None:
        raise NotFound(f"run '{run_id}' not found")
    return run


async def get_run(session: AsyncSession, run_id: str) -> Run:
    """The run's wire view (404 if there is none, 422 if ``run_id`` cannot be a run's id)."""
    return run_view(await _row(session, run_id))


async def get_run_record(session: AsyncSession, run_id: str, *, for_update: bool = False) -> RunRecord:
    """The run (404 if there is none); ``for_update`` locks it until the transaction ends."""
    return _record(await _row(session, run_id, for_update=for_update))


async def find_run(session: AsyncSession, run_id: str) -> Run | None:
    row = await session.scalar(select(RunRow).where(RunRow.id == run_id))
    return None if row is None else run_view(row)


async def find_run_record(session: AsyncSession, run_id: str) -> RunRecord | None:
    row = await session.scalar(select(RunRow).where(RunRow.id == run_id))
    return None if row is None else _record(row)


async def require_run(session: AsyncSession, run_id: str) -> None:
    """404 unless the run exists."""
    await _row(session, run_id)


async def insert_run(
    session: AsyncSession,
    *,
    run_id: str,
    agent_id: str,
    conversation_id: str | None,
    background: bool,
    request: dict[str, Any],
    request_config: dict[str, Any],
    callback_url: str | None,
    created_at: datetime,
) -> Run:
    """Insert a ``created`` run; its wire view, built without reading the row back."""
    # Built here and inserted with Core: the view needs no read-back, and the ORM unit of work would
    # cost more than the insert on this hot path.
    run = RunRow(
        id=run_id,
        agent_id=agent_id,
        conversation_id=conversation_id,
        status=RunStatus.CREATED.value,
        background=background,
        request=request,
        request_config=request_config,
        callback_url=callback_url,
        created_at=created_at,
    )
    await create_run(session, {key: getattr(run, key) for key in RUN_COLUMNS})
    return run_view(run)


async def delete_run(session: AsyncSession, run_id: str) -> None:
    """Delete the run with its messages (its steps go with it)."""
    await session.execute(delete(MessageRow).where(MessageRow.run_id == run_id))
    await session.execute(delete(RunRow).where(RunRow.id == run_id))


# -- what a run produced ---------------------------------------------------------------------------


async def run_usage(conn: AsyncSession | AsyncConnection, run_id: str) -> UsageTotals:
    """The run's tokens and step count, summed over its steps."""
    row = (await conn.execute(_USAGE, {"rid": run_id})).one()
    return UsageTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def cached_input_tokens(session: AsyncSession, run_id: str) -> int | None:
    """The cached prompt tokens a step of the run reported, if any did."""
    return await session.scalar(
        select(StepRow.cached_input_tokens).where(
            StepRow.run_id == run_id, StepRow.cached_input_tokens.is_not(None)
        )
    )


async def produced_messages(
    session: AsyncSession, run_id: str, skip_types: Sequence[str]
) -> list[LettaMessage]:
    """All the run's messages but those of ``skip_types``, in order."""
    rows = (
        await session.scalars(select(MessageRow).where(MessageRow.run_id == run_id).order_by(MessageRow.seq))
    ).all()
    return [message_view(r) for r in rows if r.message_type not in skip_types]


async def run_messages_page(session: AsyncSession, run_id: str, page: Page) -> list[LettaMessage]:
    rows = await paginate(session, MessageRow, select(MessageRow).where(MessageRow.run_id == run_id), page)
    return [message_view(r) for r in rows]


async def run_steps_page(session: AsyncSession, run_id: str, page: Page) -> list[Step]:
    rows = await paginate(session, StepRow, select(StepRow).where(StepRow.run_id == run_id), page)
    return [step_view(r) for r in rows]


async def compaction_summary(session: AsyncSession, run_id: str) -> dict[str, Any] | None:
    """The body of the summary message a compaction run wrote; None if it wrote none."""
    return await session.scalar(
        select(MessageRow.body).where(
            MessageRow.run_id == run_id, MessageRow.message_type == "summary_message"
        )
    )


# -- many runs -----------------------------------------------------------------------------------


async def list_runs(
    session: AsyncSession,
    page: Page,
    *,
    agent_ids: Sequence[str] = (),
    statuses: Sequence[str] | None = None,
    stop_reason: str | None = None,
    background: bool | None = None,
    active: bool = False,
    conversation_id: str | None = None,
) -> list[Run]:
    stmt = select(RunRow)
    if agent_ids:
        stmt = stmt.where(RunRow.agent_id.in_(list(agent_ids)))
    if statuses:
        stmt = stmt.where(RunRow.status.in_(list(statuses)))
    if active:
        stmt = stmt.where(RunRow.status.in_(sorted(ACTIVE)))
    if stop_reason is not None:
        stmt = stmt.where(RunRow.stop_reason == stop_reason)
    if background is not None:
        stmt = stmt.where(RunRow.background.is_(background))
    if conversation_id is not None:
        stmt = stmt.where(RunRow.conversation_id == conversation_id)
    return [run_view(r) for r in await paginate(session, RunRow, stmt, page)]


async def queued_count(session: AsyncSession, thread: Thread, cap: int) -> int:
    """How many runs wait in the thread's queue, counted up to ``cap``."""
    params = {"aid": thread.agent_id, "cid": thread.conversation_id, "cap": cap}
    return await session.scalar(_QUEUED[thread.conversation_id is not None], params) or 0


async def has_active_run(session: AsyncSession, thread: Thread) -> bool:
    """Whether a run of the thread is queued or running."""
    active = await session.scalar(
        select(RunRow.id)
        .where(
            RunRow.agent_id == thread.agent_id,
            _lane(thread.conversation_id is not None, thread.conversation_id),
            RunRow.status.in_(sorted(ACTIVE)),
        )
        .limit(1)
    )
    return active is not None


async def lock_agent_runs(
    session: AsyncSession, agent_id: str, run_ids: Sequence[str] | None
) -> list[tuple[str, str]]:
    """(id, status) of the agent's runs named ``run_ids`` (all its active runs if None), locked until
    the transaction ends."""
    stmt = select(RunRow.id, RunRow.status).where(RunRow.agent_id == agent_id)
    if run_ids:
        stmt = stmt.where(RunRow.id.in_(list(run_ids)))
    else:
        stmt = stmt.where(RunRow.status.in_(sorted(ACTIVE)))
    return [(r, s) for r, s in (await session.execute(stmt.with_for_update())).all()]


async def active_conversation_runs(session: AsyncSession, conversation_id: str) -> list[str]:
    """The ids of the conversation's queued and running runs."""
    stmt = select(RunRow.id).where(
        RunRow.conversation_id == conversation_id, RunRow.status.in_(sorted(ACTIVE))
    )
    return list((await session.scalars(stmt)).all())


async def latest_run(
    session: AsyncSession,
    agent_id: str,
    conversation_id: str | None,
    *,
    run_id: str | None = None,
    otid: str | None = None,
) -> RunRecord | None:
    """The thread's latest run: the one called ``run_id``, or the one ``otid`` started, if given."""
    stmt = select(RunRow).where(
        RunRow.agent_id == agent_id, _lane(conversation_id is not None, conversation_id)
    )
    if run_id is not None:
        stmt = stmt.where(RunRow.id == run_id)
    elif otid is not None:
        stmt = stmt.join(RunKeyRow, RunKeyRow.run_id == RunRow.id).where(
            RunKeyRow.agent_id == agent_id, RunKeyRow.otid == otid
        )
    row = await session.scalar(stmt.order_by(RunRow.seq.desc()).limit(1))
    return None if row is None else _record(row)
