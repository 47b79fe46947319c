"""Runs: accept a message request as a durable run (in a thread of its agent), and read runs back
(cancelling and deleting them is `services/cancellation.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.agent.messages import input_rows
from agenthost.db.database import Database
from agenthost.db.pagination import paginate
from agenthost.db.rows import AgentRow, ConversationRow, MessageRow, RunKeyRow, RunRow, StepRow
from agenthost.db.run_lifecycle import create_run
from agenthost.db.runs import run_view, step_view
from agenthost.db.threads import thread_state
from agenthost.db.types import utcnow
from agenthost.engine.base import RunEngine
from agenthost.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PendingApproval,
    ServiceUnavailable,
    TooManyRequests,
)
from agenthost.ids import check_id, new_id
from agenthost.llm.providers import Providers
from agenthost.pages import Page
from agenthost.runs.lifecycle import ACTIVE, RunStatus
from agenthost.schemas.compaction import CompactionRequest, CompactionResponse, CompactionSettings
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.schemas.messages import LettaResponse, MessageRequestBase
from agenthost.schemas.runs import Run, RunUsage, Step, TokenDetails
from agenthost.services.images import store_images
from agenthost.runs.results import run_result, run_usage, view_options
from agenthost.services.views import message_views
from agenthost.settings import Settings
from agenthost.thread import Thread


# Counts at most `cap` queued runs (a capped subquery: the check costs the same however long the queue).
def _queued(conversation: bool) -> Select[int]:
    lane = RunRow.conversation_id == bindparam("cid") if conversation else RunRow.conversation_id.is_(None)
    return select(func.count()).select_from(
        select(RunRow.seq)
        .where(RunRow.agent_id == bindparam("aid"), lane, RunRow.status == RunStatus.CREATED.value)
        .limit(bindparam("cap"))
        .subquery()
    )


_QUEUED = {c: _queued(c) for c in (False, True)}
_RETRY_AFTER_S = 1
# Locked (FOR NO KEY UPDATE, which does not block inserts referencing the agent): concurrent requests
# for one agent take turns, so a run's seq, created_at, job id and commit order agree.
_AGENT_STATE = (
    select(AgentRow.id, AgentRow.pending_approval_id)
    .where(AgentRow.id == bindparam("aid"))
    .with_for_update(key_share=True)
)
# A conversation's requests take turns on the conversation's row instead: its own lane.
_CONVERSATION_STATE = (
    select(ConversationRow.agent_id, ConversationRow.pending_approval_id)
    .where(ConversationRow.id == bindparam("cid"))
    .with_for_update(key_share=True)
)
_RUN_COLUMNS = [c for c in RunRow.__mapper__.column_attrs if c.key != "seq"]


class RunService:
    def __init__(
        self,
        db: Database,
        engine: RunEngine,
        providers: Providers,
        settings: Settings,
    ) -> None:
        self._settings = settings
        self._db = db
        self._engine = engine
        self._providers = providers

    # -- accepting ---------------------------------------------------------------------------

    async def create(
        self,
        agent_id: str,
        body: MessageRequestBase,
        *,
        background: bool,
        callback_url: str | None = None,
        token_events: bool = False,
        conversation_id: str | None = None,
    ) -> Run:
        """Commit a ``created`` run for this request and hand it to the engine (idempotent on otids).

        With ``token_events`` the run streams the LLM's tokens into its event log as they come. With
        ``conversation_id`` the run belongs to that conversation of the agent (its history, its queue);
        otherwise to the agent's default thread."""
        check_id(agent_id, "agent")
        if conversation_id is not None:
            check_id(conversation_id, "conv", ("body", "conversation_id"))
        if body.override_model:
            self._providers.resolve(body.override_model, loc=("body", "override_model"))
        inputs = [m.model_dump(mode="json", exclude_none=True) for m in body.input_messages()]
        otids = [m["otid"] for m in inputs if m.get("otid")]
        if len(otids) != len(set(otids)):
            seen: set[str] = set()
            for i, message in enumerate(inputs):
                otid = message.get("otid")
                if otid in seen:
                    raise InvalidArgument(
                        f"otid '{otid}' appears twice in this request; each message needs its own otid",
                        loc=("body", "messages", i, "otid"),
                    )
                if otid:
                    seen.add(otid)
        fields = body.model_dump(mode="json", exclude={"messages", "input"})
        request = {**fields, "inputs": inputs}
        if token_events:
            request["token_events"] = True
        request_config = {
            "use_assistant_message": body.use_assistant_message,
            "assistant_message_tool_name": body.assistant_message_tool_name,
            "assistant_message_tool_kwarg": body.assistant_message_tool_kwarg,
            "include_return_message_types": body.include_return_message_types,
            "include_compaction_messages": body.include_compaction_messages,
        }
        try:
            thread = Thread(agent_id, conversation_id)
            async with self._db.session() as session:
                pending_id = await self._lock_thread(session, agent_id, conversation_id)
                if otids:
                    earlier = await self._replay(session, agent_id, otids)
                    if earlier is not None:
                        return run_view(earlier)
                await self._check_approval_state(session, agent_id, conversation_id, pending_id, inputs)
                await self._check_queue_bound(session, agent_id, conversation_id)
                await store_images(session, agent_id, inputs)
                # Built here and inserted with Core: the view needs no read-back, and the ORM unit of
                # work would cost more than the insert on this hot path.
                run = RunRow(
                    id=new_id("run"),
                    agent_id=agent_id,
                    conversation_id=conversation_id,
                    status=RunStatus.CREATED.value,
                    background=background,
                    request=request,
                    request_config=request_config,
                    callback_url=callback_url,
                    created_at=utcnow(),
                )
                await create_run(session, {c.key: getattr(run, c.key) for c in _RUN_COLUMNS})
                if otids:
                    keys = [{"agent_id": agent_id, "otid": o, "run_id": run.id} for o in otids]
                    await session.execute(insert(RunKeyRow), keys)
                if conversation_id is not None:
                    await session.execute(
                        update(ConversationRow)
                        .where(ConversationRow.id == conversation_id)
                        .values(last_message_at=run.created_at)
                    )
                await self._engine.defer_in(session, run.id, thread)
                view = run_view(run)
        except IntegrityError:
            # A concurrent request with the same otids won the race: answer with its run.
            async with self._db.session() as session:
                earlier = await self._replay(session, agent_id, otids)
            if earlier is None:
                raise
            return run_view(earlier)
        await self._engine.enqueue(view.id, thread)
        return view

    @staticmethod
    async def _lock_thread(session: AsyncSession, agent_id: str, conversation_id: str | None) -> str | None:
        """Take the thread's turn for this request (404 if it does not exist); its pending approval."""
        if conversation_id is None:
            agent = (await session.execute(_AGENT_STATE, {"aid": agent_id})).first()
            if agent is None:
                raise NotFound(f"agent '{agent_id}' not found")
            pending: str | None = agent.pending_approval_id
            return pending
        conversation = (await session.execute(_CONVERSATION_STATE, {"cid": conversation_id})).first()
        if conversation is None or conversation.agent_id != agent_id:
            if await session.scalar(select(AgentRow.id).where(AgentRow.id == agent_id)) is None:
                raise NotFound(f"agent '{agent_id}' not found")
            raise NotFound(f"conversation '{conversation_id}' not found on agent '{agent_id}'")
        pending = conversation.pending_approval_id
        return pending

    async def create_and_wait(
        self, agent_id: str, body: MessageRequestBase, *, conversation_id: str | None = None
    ) -> LettaResponse:
        """The synchronous route: the same durable run, awaited."""
        run = await self.create(agent_id, body, background=False, conversation_id=conversation_id)
        await self._engine.wait(run.id)
        async with self._db.read_session() as session:
            row = await get_run_row(session, run.id)
            return await run_result(session, row)

    async def compact(
        self, agent_id: str, body: CompactionRequest, *, conversation_id: str | None = None
    ) -> CompactionResponse:
        """A forced compaction, run as a run of the thread: it waits its turn behind the thread's queued
        runs (per-thread FIFO), so it never races one, and it is recorded like any run."""
        check_id(agent_id, "agent")
        settings = body.compaction_settings or CompactionSettings()
        if settings.model:
            self._providers.resolve(settings.model, loc=("body", "compaction_settings", "model"))
        async with self._db.session() as session:
            await self._lock_thread(session, agent_id, conversation_id)
            run_id = new_id("run")
            await create_run(
                session,
                {
                    "id": run_id,
                    "agent_id": agent_id,
                    "conversation_id": conversation_id,
                    "background": False,
                    "request": {"compaction": settings.model_dump(mode="json"), "inputs": []},
                    "request_config": {"include_compaction_messages": True},
                    "created_at": utcnow(),
                },
            )
            # The distributed engine's job commits with the run (a no-op for the embedded engine).
            thread = Thread(agent_id, conversation_id)
            await self._engine.defer_in(session, run_id, thread)
        await self._engine.enqueue(run_id, thread)
        await self._engine.wait(run_id)
        async with self._db.read_session() as session:
            run = await get_run_row(session, run_id)
            summary = await session.scalar(
                select(MessageRow.body).where(
                    MessageRow.run_id == run_id, MessageRow.message_type == "summary_message"
                )
            )
            thread = await thread_state(session, agent_id, conversation_id)
            agent_summary = thread.context_summary if thread is not None else None
        if run.status != RunStatus.COMPLETED:
            error = (run.metadata_ or {}).get("error") or run.stop_reason
            raise ServiceUnavailable(f"the compaction run {run_id} ended {run.status}: {error}")
        if summary is None:
            return CompactionResponse(
                summary=agent_summary or "",
                num_messages_before=0,
                num_messages_after=0,
                run_id=run_id,
                status="unchanged",
            )
        stats = summary.get("compaction_stats") or {}
        return CompactionResponse(
            summary=summary["summary"],
            num_messages_before=int(stats.get("messages_count_before", 0)),
            num_messages_after=int(stats.get("messages_count_after", 0)),
            run_id=run_id,
        )

    async def _check_queue_bound(
        self, session: AsyncSession, agent_id: str, conversation_id: str | None
    ) -> None:
        """429 past ``max_queued_runs_per_agent`` waiting runs in the thread: a bounded queue keeps
        every thread's wait (and the distributed engine's job fetches) bounded."""
        limit = self._settings.max_queued_runs_per_agent
        params = {"aid": agent_id, "cid": conversation_id, "cap": limit}
        queued = await session.scalar(_QUEUED[conversation_id is not None], params)
        if queued is not None and queued >= limit:
            where = f"conversation '{conversation_id}'" if conversation_id else f"agent '{agent_id}'"
            raise TooManyRequests(
                f"{where} already has {limit} runs waiting; retry once some have run",
                retry_after_s=_RETRY_AFTER_S,
            )

    async def _replay(self, session: AsyncSession, agent_id: str, otids: list[str]) -> RunRow | None:
        keys = (
            await session.scalars(
                select(RunKeyRow).where(RunKeyRow.agent_id == agent_id, RunKeyRow.otid.in_(otids))
            )
        ).all()
        if not keys:
            return None
        run_ids = {k.run_id for k in keys}
        conflict = Conflict(
            f"otids {sorted(k.otid for k in keys)} were already used by run(s) {sorted(run_ids)} "
            "of this agent; "
            "a retry must repeat the whole request with the same otids"
        )
        if len(run_ids) > 1 or len(keys) != len(otids):
            raise conflict
        run_id = run_ids.pop()
        run = await session.scalar(select(RunRow).where(RunRow.id == run_id))
        if run is None:  # the earlier run was deleted: its otids are free again
            await session.execute(
                delete(RunKeyRow).where(RunKeyRow.agent_id == agent_id, RunKeyRow.otid.in_(otids))
            )
            return None
        # A subset of the earlier request's otids is another request, not a retry of it.
        earlier = set((await session.scalars(select(RunKeyRow.otid).where(RunKeyRow.run_id == run_id))).all())
        if earlier != set(otids):
            raise conflict
        return run

    async def _check_approval_state(
        self,
        session: AsyncSession,
        agent_id: str,
        conversation_id: str | None,
        pending_id: str | None,
        inputs: list[dict[str, Any]],
    ) -> None:
        answers = any(m.get("type") in ("approval", "tool_return") for m in inputs)
        pending = None
        if pending_id is not None:
            pending = await session.scalar(select(MessageRow).where(MessageRow.id == pending_id))
        if pending is not None and not answers:
            where = f"conversation '{conversation_id}'" if conversation_id else f"agent '{agent_id}'"
            raise PendingApproval(
                f"{where} is waiting for an answer to approval request '{pending.id}'; "
                "send an approval (or the tool returns), or cancel the pending request",
                extra={"pending_request_id": pending.id},
            )
        if pending is not None:
            probe = RunRow(id="run-probe", agent_id=agent_id)
            try:
                input_rows(probe, inputs, pending)
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
        elif answers:
            active = await session.scalar(
                select(RunRow.id)
                .where(
                    RunRow.agent_id == agent_id,
                    RunRow.conversation_id == conversation_id
                    if conversation_id
                    else RunRow.conversation_id.is_(None),
                    RunRow.status.in_(sorted(ACTIVE)),
                )
                .limit(1)
            )
            if active is None:
                raise InvalidArgument(f"agent '{agent_id}' has no pending approval request to answer")

    # -- reading -----------------------------------------------------------------------------

    async def retrieve(self, run_id: str) -> Run:
        async with self._db.read_session() as session:
            return run_view(await get_run_row(session, run_id))

    async def list_runs(
        self,
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
        async with self._db.read_session() as session:
            return [run_view(r) for r in await paginate(session, RunRow, stmt, page)]

    async def messages(self, run_id: str, page: Page) -> list[LettaMessage]:
        async with self._db.read_session() as session:
            run = await get_run_row(session, run_id)
            rows = await paginate(
                session, MessageRow, select(MessageRow).where(MessageRow.run_id == run_id), page
            )
            return message_views(rows, **view_options(run))

    async def usage(self, run_id: str) -> RunUsage:
        async with self._db.read_session() as session:
            await get_run_row(session, run_id)
            prompt, completion, total, _ = await run_usage(session, run_id)
            cached = await session.scalar(
                select(StepRow.cached_input_tokens).where(
                    StepRow.run_id == run_id, StepRow.cached_input_tokens.is_not(None)
                )
            )
        return RunUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=total,
            prompt_tokens_details=TokenDetails(cached_tokens=cached) if cached is not None else None,
        )

    async def steps(self, run_id: str, page: Page) -> list[Step]:
        async with self._db.read_session() as session:
            await get_run_row(session, run_id)
            rows = await paginate(session, StepRow, select(StepRow).where(StepRow.run_id == run_id), page)
            return [step_view(r) for r in rows]


async def get_run_row(session: AsyncSession, run_id: str, *, for_update: bool = False) -> RunRow:
    check_id(run_id, "run")
    stmt = select(RunRow).where(RunRow.id == run_id)
    if for_update:
        stmt = stmt.with_for_update()
    run = await session.scalar(stmt)
    if run is None:
        raise NotFound(f"run '{run_id}' not found")
    return run
