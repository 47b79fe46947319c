"""The agent loop's persistence in memory: ``RunPersistence`` without a database, for tests of the loop.

The same rules as the database's (``db/run_store.py``), kept in dicts: a run is claimed once from
``created``; every write after that is fenced on the run still being ``running`` under the execution's
attempt; a terminal transition records the agent's last stop reason; a hand-back re-queues or fails by
the lifecycle's policy (``db/run_lifecycle.py``). A test sets up agents and runs with the ``add_``
methods, cancels with ``cancel``, and reads what the loop wrote back from the attributes.

Not shared between processes and not durable: tests only. Image files are not stored (a run sees none).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from agenthost.agent.messages import input_messages
from agenthost.agent.persistence import (
    AgentSnapshot,
    Committed,
    ContextState,
    Ending,
    Rejected,
    RunHandle,
    StartedRun,
    StepRecord,
    StoredMessage,
    TokenStream,
)
from agenthost.agent.run_request import RunRequest
from agenthost.db.messages import search_role, searchable_text, searched_types
from agenthost.db.run_lifecycle import ACTIVE, RunStatus, hand_back_verdict, status_for
from agenthost.errors import NotFound
from agenthost.ids import new_id
from agenthost.llm.base import Delta
from agenthost.thread import Thread
from agenthost.tools.executor import AgentTool
from agenthost.tools.memory import BlockState, merge_edits


@dataclass(slots=True)
class MemoryRun:
    """A run as the in-memory store keeps it."""

    id: str
    thread: Thread
    request: dict[str, Any]
    status: RunStatus = RunStatus.CREATED
    attempt: int = 1
    effects_started: bool = False
    stop_reason: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    callback_url: str | None = None
    steps: list[StepRecord] = field(default_factory=list)


@dataclass(slots=True)
class ThreadState:
    """A thread's compaction state and pending approval (on the agent row or a conversation's)."""

    context_start_seq: int | None = None
    context_summary: str | None = None
    pending_approval_id: str | None = None
    # A conversation's own model and window (None: the agent's).
    model: str | None = None
    context_window: int | None = None


@dataclass(slots=True)
class MemoryAgent:
    snapshot: AgentSnapshot
    block_ids: list[str]
    last_stop_reason: str | None = None
    last_run_completion: datetime | None = None


class InMemoryRunStore:
    """``RunPersistence`` in dicts (see the module's docstring)."""

    def __init__(self) -> None:
        self.agents: dict[str, MemoryAgent] = {}
        self.blocks: dict[str, BlockState] = {}  # stored values (``value``); the runs work on copies
        self.threads: dict[Thread, ThreadState] = {}
        self.runs: dict[str, MemoryRun] = {}
        self.messages: list[StoredMessage] = []
        self.token_logs: dict[str, MemoryTokenLog] = {}
        self._seq = itertools.count(1)

    # -- set-up (tests) -----------------------------------------------------------------------

    def add_agent(
        self,
        model: str,
        *,
        system: str = "You are a test agent.",
        context_window: int = 32_000,
        max_tokens: int | None = None,
        tools: Sequence[AgentTool] = (),
        tool_rules: Sequence[dict[str, Any]] = (),
        blocks: Sequence[tuple[str, str]] = (),
        block_limit: int = 5_000,
        env: dict[str, str] | None = None,
    ) -> str:
        """A new agent with these tools and memory blocks (label, value); its id."""
        agent_id = new_id("agent")
        block_ids = []
        for label, value in blocks:
            block = BlockState(new_id("block"), label, value, block_limit, None, False)
            self.blocks[block.id] = block
            block_ids.append(block.id)
        snapshot = AgentSnapshot(
            agent_id, system, model, context_window, max_tokens, list(tools), list(tool_rules), env or {}
        )
        self.agents[agent_id] = MemoryAgent(snapshot, block_ids)
        self.threads[Thread(agent_id)] = ThreadState()
        return agent_id

    def add_conversation(self, agent_id: str) -> Thread:
        thread = Thread(agent_id, new_id("conv"))
        self.threads[thread] = ThreadState()
        return thread

    def add_run(self, thread: Thread | str, request: RunRequest, *, callback_url: str | None = None) -> str:
        """A ``created`` run of ``thread`` (an agent id: its default thread); its id."""
        thread = Thread(thread) if isinstance(thread, str) else thread
        run = MemoryRun(new_id("run"), thread, request.stored(), callback_url=callback_url)
        self.runs[run.id] = run
        return run.id

    def cancel(self, run_id: str) -> bool:
        """A client's cancel: created | running → cancelled (False if the run was not active)."""
        run = self.runs[run_id]
        if run.status not in ACTIVE:
            return False
        self._end(run, Ending("cancelled"))
        return True

    def thread_messages(self, thread: Thread | str) -> list[StoredMessage]:
        """Every message of the thread, in order."""
        thread = Thread(thread) if isinstance(thread, str) else thread
        return [m for m in self.messages if self._in(thread, m)]

    # -- RunPersistence -----------------------------------------------------------------------

    async def begin(self, run_id: str) -> StartedRun | Rejected | None:
        run = self.runs.get(run_id)
        if run is None or run.status is not RunStatus.CREATED:
            return None
        run.status = RunStatus.RUNNING
        handle = RunHandle(run.id, run.thread, run.attempt)
        request = RunRequest.model_validate(run.request)
        agent = self.agents[run.thread.agent_id]
        state = self.threads.get(run.thread)
        if state is None:
            reason = f"conversation '{run.thread.conversation_id}' was deleted before this run started"
            return Rejected(reason, self._end(run, Ending("error", reason)))
        approved: list[dict[str, Any]] = []
        if request.compaction is None:
            pending = self._message(state.pending_approval_id)
            try:
                inputs, approved = input_messages(run.id, agent.snapshot.id, request.inputs, pending)
            except ValueError as exc:
                return Rejected(str(exc), self._end(run, Ending("error", str(exc))))
            self._insert(inputs, run.thread)
            state.pending_approval_id = None
        snapshot = replace(
            agent.snapshot,
            model=state.model or agent.snapshot.model,
            context_window=state.context_window or agent.snapshot.context_window,
            context_summary=state.context_summary,
        )
        return StartedRun(
            handle=handle,
            request=request,
            agent=snapshot,
            blocks=[replace(self.blocks[b], base=self.blocks[b].value, edits=[]) for b in agent.block_ids],
            history=self._context(run.thread, state),
            approved_calls=approved,
        )

    async def commit_step(
        self,
        run: RunHandle,
        step: StepRecord,
        messages: list[StoredMessage],
        blocks: list[BlockState],
        *,
        pending_approval_id: str | None = None,
        ending: Ending | None = None,
        token_log: TokenStream | None = None,
    ) -> Committed | None:
        record = self._owned(run)
        if record is None:
            return None
        record.steps.append(step)
        self._insert(messages, run.thread)
        for block in blocks:
            if block.changed:
                stored = self.blocks[block.id]
                stored.value = merge_edits(block, stored.value)
                block.value, block.base, block.changed = stored.value, stored.value, False
                block.edits.clear()
        if pending_approval_id is not None:
            self.threads[run.thread].pending_approval_id = pending_approval_id
        if ending is None:
            return Committed(ended=False, callback_pending=False)
        return self._end(record, ending)

    def token_log(self, run: RunHandle) -> MemoryTokenLog:
        log = MemoryTokenLog(run.run_id)
        self.token_logs[run.run_id] = log
        return log

    async def effects_starting(self, run: RunHandle) -> bool:
        record = self._owned(run)
        if record is None:
            return False
        record.effects_started = True
        return True

    async def finish(self, run_id: str, ending: Ending) -> Committed | None:
        run = self.runs[run_id]
        if run.status is not RunStatus.RUNNING or (ending.attempt not in (None, run.attempt)):
            return None
        return self._end(run, ending)

    async def hand_back(self, run_id: str, reason: str) -> Committed | None:
        run = self.runs[run_id]
        if run.status is not RunStatus.RUNNING:
            return None
        verdict, why = hand_back_verdict(
            had_steps=bool(run.steps), effects_started=run.effects_started, attempt=run.attempt
        )
        if verdict == "requeue":
            # The next attempt writes the input again; compaction records stay (as in the database).
            kept = ("summary_message", "event_message")
            self.messages = [m for m in self.messages if m.run_id != run_id or m.message_type in kept]
            run.status, run.attempt = RunStatus.CREATED, run.attempt + 1
            return None
        return self._end(run, Ending("error", f"{reason}; {why}"))

    async def context(self, thread: Thread) -> ContextState:
        state = self.threads.get(thread)
        if state is None:
            raise NotFound(f"conversation '{thread.conversation_id}' not found")
        return ContextState(
            state.context_start_seq,
            state.context_summary,
            state.pending_approval_id,
            self._context(thread, state),
        )

    async def apply_compaction(
        self,
        run: RunHandle,
        expected_start: int | None,
        new_start: int,
        summary: str,
        messages: list[StoredMessage],
        *,
        token_log: TokenStream | None = None,
    ) -> bool:
        if self._owned(run) is None:
            return False
        state = self.threads[run.thread]
        if state.context_start_seq != expected_start:
            return False
        state.context_start_seq, state.context_summary = new_start, summary
        self._insert(messages, run.thread)
        return True

    async def search_messages(
        self, agent_id: str, query: str, roles: list[str] | None, limit: int
    ) -> list[dict[str, Any]]:
        wanted = set(searched_types(roles))
        found = []
        for message in reversed(self.messages):
            if message.agent_id != agent_id or message.message_type not in wanted:
                continue
            text = searchable_text(message.message_type, message.body)
            if query.lower() in text.lower():
                when = message.created_at.isoformat() if message.created_at else ""
                found.append({"date": when, "role": search_role(message.message_type), "text": text})
        return found[:limit]

    # -- the rules ----------------------------------------------------------------------------

    def _owned(self, run: RunHandle) -> MemoryRun | None:
        record = self.runs.get(run.run_id)
        if record is None or record.status is not RunStatus.RUNNING or record.attempt != run.attempt:
            return None
        return record

    def _end(self, run: MemoryRun, ending: Ending) -> Committed:
        run.status = status_for(ending.stop_reason)
        run.stop_reason, run.error, run.result = ending.stop_reason, ending.error, ending.result
        agent = self.agents[run.thread.agent_id]
        agent.last_stop_reason, agent.last_run_completion = ending.stop_reason, datetime.now(UTC)
        return Committed(ended=True, callback_pending=run.callback_url is not None)

    def _insert(self, messages: list[StoredMessage], thread: Thread) -> None:
        for message in messages:
            message.conversation_id = thread.conversation_id
            message.seq = next(self._seq)
            self.messages.append(message)

    def _message(self, message_id: str | None) -> StoredMessage | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def _context(self, thread: Thread, state: ThreadState) -> list[StoredMessage]:
        start = state.context_start_seq or 0
        return [m for m in self.messages if self._in(thread, m) and (m.seq or 0) >= start]

    @staticmethod
    def _in(thread: Thread, message: StoredMessage) -> bool:
        return message.agent_id == thread.agent_id and message.conversation_id == thread.conversation_id


class MemoryTokenLog:
    """A run's token events in memory: each delta under the id of the message it belongs to."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.deltas: list[tuple[str, Delta]] = []  # (message id, delta)
        self._open: dict[tuple[str, int], tuple[str, str]] = {}
        self.closed = False

    def begin_call(self, step_id: str) -> None:
        self._open.clear()

    def message_ids(self, kind: str, index: int = 0) -> tuple[str, str] | None:
        return self._open.get((kind, index))

    def delta(self, piece: Delta) -> None:
        ids = self._open.setdefault((piece.kind, piece.index), (new_id("message"), new_id("otid")))
        self.deltas.append((ids[0], piece))

    def restart(self) -> None:
        self._open.clear()

    async def close(self) -> None:
        self.closed = True
