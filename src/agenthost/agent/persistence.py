"""What the agent loop reads and writes, as a protocol in domain types: the loop's seam.

The loop never sees SQL or a row: it starts a run (``begin``), commits each step atomically
(``commit_step``: the step, its messages, the memory edits and, with an ``Ending``, the run's end), and
reads a thread's context back for compaction. Every write after ``begin`` is fenced on the run's
ownership, named by a ``RunHandle``: once a run is cancelled, failed or handed back, nothing a late
step produces can land (the write answers ``None``/``False`` and the loop stops).

Two implementations: ``db/run_store.py`` on the database, ``db/in_memory.py`` for tests of the
loop's decisions without HTTP or SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from agenthost.agent.run_request import RunRequest
from agenthost.llm.base import DeltaSink
from agenthost.thread import Thread
from agenthost.tools.executor import AgentTool
from agenthost.tools.memory import BlockState


@dataclass(frozen=True, slots=True)
class RunHandle:
    """Which run an execution writes, and as which attempt (its writes are fenced on both)."""

    run_id: str
    thread: Thread
    attempt: int = 1

    @property
    def agent_id(self) -> str:
        return self.thread.agent_id


@dataclass(slots=True)
class StoredMessage:
    """A Letta message as stored: its envelope, and its type's body as JSON (read with
    ``schemas/letta_messages.py``'s ``parse_body``)."""

    id: str
    agent_id: str
    run_id: str | None
    step_id: str | None
    message_type: str
    body: dict[str, Any]
    otid: str | None = None
    is_err: bool = False
    created_at: datetime | None = None  # set when made; not read back with a run's history
    # Which of an approval request's calls are client-side tools (bookkeeping, never on the wire).
    client_tool_names: list[str] | None = None
    conversation_id: str | None = None
    # The position in the agent's history, once stored.
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run ends: its stop reason (the status follows), an error text, and timings."""

    stop_reason: str
    error: str | None = None
    ttft_ns: int | None = None
    duration_ns: int | None = None
    # What the run returns besides its messages (``logprobs``, ``turns``), kept in the run's metadata.
    result: dict[str, Any] | None = None
    # The execution that ends the run (None: whoever it is).
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """What a commit did to the run: whether it ended it, and whether its callback is now due."""

    ended: bool
    callback_pending: bool


@dataclass(slots=True)
class AgentSnapshot:
    id: str
    system: str
    model: str
    context_window: int
    max_tokens: int | None
    tools: list[AgentTool]
    tool_rules: list[dict[str, Any]]
    env: dict[str, str]
    # The summary of the messages compacted out of the context (``agent/compaction.py``), if any.
    context_summary: str | None = None


class TokenStream(DeltaSink, Protocol):
    """The event log of a run streaming tokens: deltas as the LLM generates them, each under the id of
    the message it belongs to (the committed message keeps that id)."""

    def begin_call(self, step_id: str) -> None:
        """A new LLM call of step ``step_id`` begins: its deltas belong to new messages."""

    def message_ids(self, kind: str, index: int = 0) -> tuple[str, str] | None:
        """The (message id, otid) the current call's ``kind``/``index`` deltas went out under, if any."""

    async def close(self) -> None:
        """Write what is pending and stop."""


@dataclass(slots=True)
class StartedRun:
    handle: RunHandle
    request: RunRequest
    agent: AgentSnapshot
    blocks: list[BlockState]
    history: list[StoredMessage]  # the thread's in-context messages, oldest first
    # Stored image files the history shows: file_id → data URL.
    images: dict[str, str] = field(default_factory=dict)
    # Set once a server-side tool with effects may have run (recorded on the run first).
    effects_started: bool = False
    # Server-side tool calls a human approved in this run's input: executed before the first LLM call.
    approved_calls: list[dict[str, Any]] = field(default_factory=list)
    # Set when the run streams tokens.
    token_log: TokenStream | None = None

    @property
    def run_id(self) -> str:
        return self.handle.run_id


@dataclass(slots=True)
class ContextState:
    """A thread's context, for planning a compaction."""

    start_seq: int | None
    summary: str | None
    pending_approval_id: str | None
    messages: list[StoredMessage]  # in context, oldest first, each with its ``seq``


@dataclass(slots=True)
class Rejected:
    """The run's input cannot be applied (e.g. it collides with a pending approval); already failed."""

    reason: str
    committed: Committed | None


@dataclass(slots=True)
class StepRecord:
    step_id: str
    model: str
    model_handle: str
    provider_name: str
    model_endpoint: str | None
    context_window: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    status: str = "success"
    stop_reason: str | None = None
    error_type: str | None = None
    error_data: dict[str, Any] | None = None


class RunPersistence(Protocol):
    """Where the loop's runs live. Each method is one transaction."""

    async def begin(self, run_id: str) -> StartedRun | Rejected | None:
        """created → running, with the run's input entering its thread's history. ``None`` when the
        run is no longer ``created`` (cancelled while queued, or deleted)."""

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
        """A step's record, messages and memory edits, atomically; with ``ending`` the run's end too.
        ``None`` (nothing written) when the execution no longer owns the run."""

    def token_log(self, run: RunHandle) -> TokenStream:
        """The event log a run streaming tokens writes its deltas to."""

    async def effects_starting(self, run: RunHandle) -> bool:
        """Record, before a server-side tool with effects first runs, that the run may have had
        effects (it is failed, not re-queued, should its execution stop). False if not owned."""

    async def finish(self, run_id: str, ending: Ending) -> Committed | None:
        """running → terminal. ``None`` when someone else ended the run first."""

    async def hand_back(self, run_id: str, reason: str) -> Committed | None:
        """A run this process stops executing without ending it (shutdown): re-queued when it has
        done nothing yet, else failed with ``reason``. The commit, when it failed the run."""

    async def context(self, thread: Thread) -> ContextState:
        """The thread's in-context messages and compaction state."""

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
        """Move the thread's context start to ``new_start`` and store the summary, with the compaction's
        messages, atomically. ``False`` (nothing written) when the run is not owned or another compaction
        moved the start first."""

    async def search_messages(
        self, agent_id: str, query: str, roles: list[str] | None, limit: int
    ) -> list[dict[str, Any]]:
        """The agent's messages whose text contains ``query``, newest first (``conversation_search``)."""
