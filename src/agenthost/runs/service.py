"""Runs: accept a message request as a durable run (in a thread of its agent), force a compaction as a
run, and read runs back (cancelling and deleting them is ``runs/cancellation.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agenthost.agent.messages import input_messages
from agenthost.agent.run_request import RunRequest
from agenthost.db import agents as agents_db
from agenthost.db import conversations as conversations_db
from agenthost.db import messages as messages_db
from agenthost.db import run_keys
from agenthost.db import runs as runs_db
from agenthost.db import threads as threads_db
from agenthost.db.database import ConstraintViolation, Database, Session
from agenthost.db.run_lifecycle import RunStatus
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
from agenthost.runs.results import run_result, view_options
from agenthost.schemas.compaction import CompactionRequest, CompactionResponse, CompactionSettings
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.schemas.messages import InputMessage, LettaResponse, MessageCreate, MessageRequestBase
from agenthost.schemas.runs import Run, RunUsage, Step, TokenDetails
from agenthost.services.images import store_images
from agenthost.services.views import shape_views
from agenthost.settings import Settings
from agenthost.thread import Thread

_RETRY_AFTER_S = 1


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
        run_request = RunRequest.of(body, token_events=token_events)
        otids = [m.otid for m in run_request.inputs if m.otid]
        if len(otids) != len(set(otids)):
            seen: set[str] = set()
            for i, message in enumerate(run_request.inputs):
                otid = message.otid
                if otid in seen:
                    raise InvalidArgument(
                        f"otid '{otid}' appears twice in this request; each message needs its own otid",
                        loc=("body", "messages", i, "otid"),
                    )
                if otid:
                    seen.add(otid)
        request = run_request.stored()
        # The dumped inputs: their inline images are stored as files before the run row is written.
        inputs: list[dict[str, Any]] = request["inputs"]
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
                        return earlier
                await self._check_approval_state(
                    session, agent_id, conversation_id, pending_id, run_request.inputs
                )
                await self._check_queue_bound(session, agent_id, conversation_id)
                await store_images(session, agent_id, inputs)
                created_at = utcnow()
                view = await runs_db.insert_run(
                    session,
                    run_id=new_id("run"),
                    agent_id=agent_id,
                    conversation_id=conversation_id,
                    background=background,
                    request=request,
                    request_config=request_config,
                    callback_url=callback_url,
                    created_at=created_at,
                )
                if otids:
                    await run_keys.add_keys(session, agent_id, view.id, otids)
                if conversation_id is not None:
                    await conversations_db.touch_last_message(session, conversation_id, created_at)
                await self._engine.defer_in(session, view.id, thread)
        except ConstraintViolation:
            # A concurrent request with the same otids won the race: answer with its run.
            async with self._db.session() as session:
                earlier = await self._replay(session, agent_id, otids)
            if earlier is None:
                raise
            return earlier
        await self._engine.enqueue(view.id, thread)
        return view

    @staticmethod
    async def _lock_thread(session: Session, agent_id: str, conversation_id: str | None) -> str | None:
        """Take the thread's turn for this request (404 if it does not exist); its pending approval.

        Concurrent requests for one thread take turns on its row, so a run's seq, created_at, job id and
        commit order agree."""
        if conversation_id is None:
            agent = await threads_db.lock_agent_thread(session, agent_id)
            if agent is None:
                raise NotFound(f"agent '{agent_id}' not found")
            return agent.pending_approval_id
        conversation = await threads_db.lock_conversation(session, conversation_id)
        if conversation is None or conversation.agent_id != agent_id:
            if not await agents_db.agent_exists(session, agent_id):
                raise NotFound(f"agent '{agent_id}' not found")
            raise NotFound(f"conversation '{conversation_id}' not found on agent '{agent_id}'")
        return conversation.pending_approval_id

    async def create_and_wait(
        self, agent_id: str, body: MessageRequestBase, *, conversation_id: str | None = None
    ) -> LettaResponse:
        """The synchronous route: the same durable run, awaited."""
        run = await self.create(agent_id, body, background=False, conversation_id=conversation_id)
        await self._engine.wait(run.id)
        async with self._db.read_session() as session:
            return await run_result(session, await runs_db.get_run_record(session, run.id))

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
            await runs_db.insert_run(
                session,
                run_id=run_id,
                agent_id=agent_id,
                conversation_id=conversation_id,
                background=False,
                request={"compaction": settings.model_dump(mode="json"), "inputs": []},
                request_config={"include_compaction_messages": True},
                callback_url=None,
                created_at=utcnow(),
            )
            # The distributed engine's job commits with the run (a no-op for the embedded engine).
            thread = Thread(agent_id, conversation_id)
            await self._engine.defer_in(session, run_id, thread)
        await self._engine.enqueue(run_id, thread)
        await self._engine.wait(run_id)
        async with self._db.read_session() as session:
            run = await runs_db.get_run_record(session, run_id)
            summary = await runs_db.compaction_summary(session, run_id)
            state = await threads_db.thread_state(session, Thread(agent_id, conversation_id))
            agent_summary = state.context_summary if state is not None else None
        if run.status != RunStatus.COMPLETED:
            error = (run.metadata or {}).get("error") or run.stop_reason
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

    async def _check_queue_bound(self, session: Session, agent_id: str, conversation_id: str | None) -> None:
        """429 past ``max_queued_runs_per_agent`` waiting runs in the thread: a bounded queue keeps
        every thread's wait (and the distributed engine's job fetches) bounded."""
        limit = self._settings.max_queued_runs_per_agent
        if await runs_db.queued_count(session, Thread(agent_id, conversation_id), limit) >= limit:
            where = f"conversation '{conversation_id}'" if conversation_id else f"agent '{agent_id}'"
            raise TooManyRequests(
                f"{where} already has {limit} runs waiting; retry once some have run",
                retry_after_s=_RETRY_AFTER_S,
            )

    async def _replay(self, session: Session, agent_id: str, otids: list[str]) -> Run | None:
        """The run these otids started, when this request repeats its request (409 if it only overlaps)."""
        keys = await run_keys.runs_by_otid(session, agent_id, otids)
        if not keys:
            return None
        run_ids = set(keys.values())
        conflict = Conflict(
            f"otids {sorted(keys)} were already used by run(s) {sorted(run_ids)} "
            "of this agent; "
            "a retry must repeat the whole request with the same otids"
        )
        if len(run_ids) > 1 or len(keys) != len(otids):
            raise conflict
        run_id = run_ids.pop()
        run = await runs_db.find_run(session, run_id)
        if run is None:  # the earlier run was deleted: its otids are free again
            await run_keys.free_otids(session, agent_id, otids)
            return None
        # A subset of the earlier request's otids is another request, not a retry of it.
        if await run_keys.otids_of_run(session, run_id) != set(otids):
            raise conflict
        return run

    async def _check_approval_state(
        self,
        session: Session,
        agent_id: str,
        conversation_id: str | None,
        pending_id: str | None,
        inputs: Sequence[InputMessage],
    ) -> None:
        answers = any(not isinstance(m, MessageCreate) for m in inputs)
        pending = None
        if pending_id is not None:
            pending = await messages_db.approval_request(session, pending_id)
        if pending is not None and not answers:
            where = f"conversation '{conversation_id}'" if conversation_id else f"agent '{agent_id}'"
            raise PendingApproval(
                f"{where} is waiting for an answer to approval request '{pending.id}'; "
                "send an approval (or the tool returns), or cancel the pending request",
                extra={"pending_request_id": pending.id},
            )
        if pending is not None:
            # The answer is checked now, as the run's start will turn it into messages: a bad answer is
            # a 422 here rather than a failed run.
            try:
                input_messages("run-probe", agent_id, inputs, pending)
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
        elif answers and not await runs_db.has_active_run(session, Thread(agent_id, conversation_id)):
            raise InvalidArgument(f"agent '{agent_id}' has no pending approval request to answer")

    # -- reading -----------------------------------------------------------------------------

    async def retrieve(self, run_id: str) -> Run:
        async with self._db.read_session() as session:
            return await runs_db.get_run(session, run_id)

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
        async with self._db.read_session() as session:
            return await runs_db.list_runs(
                session,
                page,
                agent_ids=agent_ids,
                statuses=statuses,
                stop_reason=stop_reason,
                background=background,
                active=active,
                conversation_id=conversation_id,
            )

    async def messages(self, run_id: str, page: Page) -> list[LettaMessage]:
        async with self._db.read_session() as session:
            run = await runs_db.get_run_record(session, run_id)
            items = await runs_db.run_messages_page(session, run_id, page)
        return shape_views(items, **view_options(run.request_config))

    async def usage(self, run_id: str) -> RunUsage:
        async with self._db.read_session() as session:
            await runs_db.require_run(session, run_id)
            usage = await runs_db.run_usage(session, run_id)
            cached = await runs_db.cached_input_tokens(session, run_id)
        return RunUsage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            prompt_tokens_details=TokenDetails(cached_tokens=cached) if cached is not None else None,
        )

    async def steps(self, run_id: str, page: Page) -> list[Step]:
        async with self._db.read_session() as session:
            await runs_db.require_run(session, run_id)
            return await runs_db.run_steps_page(session, run_id, page)
