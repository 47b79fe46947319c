"""ORM rows. Named ``*Row`` so they never clash with the wire schemas; they do not leave ``db``/``services``.

Every table has an integer ``seq`` key (insertion order, used for FIFO and cursor pagination) and the
public string ``id`` (``<prefix>-<uuid4>``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from agenthost.db.types import Json, SeqKey, UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class AgentRow(Base):
    __tablename__ = "agents"

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    agent_type: Mapped[str] = mapped_column(String(32))
    system: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(255))
    context_window: Mapped[int] = mapped_column(Integer)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    embedding: Mapped[str | None] = mapped_column(String(255))
    tool_rules: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    tool_exec_environment_variables: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", Json)
    timezone: Mapped[str | None] = mapped_column(String(64))
    message_buffer_autoclear: Mapped[bool] = mapped_column(Boolean, default=False)
    # The approval_request_message a new user message would collide with (409 PENDING_APPROVAL).
    pending_approval_id: Mapped[str | None] = mapped_column(String(64))
    # Compaction: messages before this seq are out of the LLM's context (still stored and searchable);
    # the summary of everything evicted so far stands in for them.
    context_start_seq: Mapped[int | None] = mapped_column(SeqKey)
    context_summary: Mapped[str | None] = mapped_column(Text)
    last_run_completion: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_stop_reason: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ToolRow(Base):
    """A tool an agent can call: a built-in (``tool_type`` ``letta_*``) or a custom Python function."""

    __tablename__ = "tools"

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    # Names are unique on the server: the LLM calls tools by name.
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    tool_type: Mapped[str] = mapped_column(String(64), index=True)
    source_type: Mapped[str | None] = mapped_column(String(32))
    source_code: Mapped[str | None] = mapped_column(Text)
    json_schema: Mapped[dict[str, Any]] = mapped_column(Json)
    args_json_schema: Mapped[dict[str, Any] | None] = mapped_column(Json)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    return_char_limit: Mapped[int] = mapped_column(Integer)
    pip_requirements: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    npm_requirements: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    default_requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    enable_parallel_execution: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AgentToolRow(Base):
    __tablename__ = "agent_tools"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    tool_id: Mapped[str] = mapped_column(
        ForeignKey("tools.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class AgentTagRow(Base):
    __tablename__ = "agent_tags"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class BlockRow(Base):
    __tablename__ = "blocks"

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    limit: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AgentBlockRow(Base):
    __tablename__ = "agent_blocks"
    __table_args__ = (UniqueConstraint("agent_id", "label", name="uq_agent_blocks_agent_label"),)

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    block_id: Mapped[str] = mapped_column(ForeignKey("blocks.id", ondelete="CASCADE"), primary_key=True)
    # Denormalised so that a label is unique per agent (checked by the database, not by hope).
    label: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer, default=0)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_agent_seq", "agent_id", "seq"),
        Index("ix_runs_status_seq", "status", "seq"),
        Index("ix_runs_agent_status", "agent_id", "status"),
        Index("ix_runs_conversation_seq", "conversation_id", "seq"),
        # Only the few runs with a callback to deliver: the sweep reads them every few seconds.
        Index(
            "ix_runs_callback_pending",
            "callback_pending",
            postgresql_where=text("callback_pending"),
            sqlite_where=text("callback_pending"),
        ),
    )

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    background: Mapped[bool] = mapped_column(Boolean, default=True)
    # The whole accepted request (input messages, max_steps, overrides, client tools, ...): the run
    # row is what we acknowledge, and the run executes from it.
    request: Mapped[dict[str, Any]] = mapped_column(Json)
    request_config: Mapped[dict[str, Any]] = mapped_column(Json)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", Json)
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    callback_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    callback_status_code: Mapped[int | None] = mapped_column(Integer)
    callback_error: Mapped[str | None] = mapped_column(Text)
    # Until when a process delivering the callback holds it; past that, any process's sweep takes over.
    callback_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which execution of the run may write: a run handed back after its worker died gets attempt + 1,
    # and every write of the loop is fenced on it.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Set before the run's first server-side tool executes: past that, a dead worker's run is failed,
    # not re-queued (the tool may have had effects).
    effects_started: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # The procrastinate job executing the run (distributed engine only).
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    ttft_ns: Mapped[int | None] = mapped_column(SeqKey)
    total_duration_ns: Mapped[int | None] = mapped_column(SeqKey)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunKeyRow(Base):
    """An ``otid`` an agent has already accepted, and the run it started (idempotent create_async)."""

    __tablename__ = "run_keys"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    otid: Mapped[str] = mapped_column(String(255), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)


class MessageRow(Base):
    """One Letta message (``message_type`` + its type-specific ``body``), in agent order by ``seq``."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_agent_seq", "agent_id", "seq"),
        Index("ix_messages_run_seq", "run_id", "seq"),
        Index("ix_messages_conversation_seq", "conversation_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    run_id: Mapped[str | None] = mapped_column(String(64))
    # The conversation the message belongs to; None: the agent's default thread.
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    step_id: Mapped[str | None] = mapped_column(String(64))
    message_type: Mapped[str] = mapped_column(String(32))
    otid: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[dict[str, Any]] = mapped_column(Json)
    is_err: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Of an approval request: which of its calls are client-side tools (answered only by their tool
    # return). Ours, not the wire's: kept out of ``body``, which is served as it is stored.
    client_tool_names: Mapped[list[str] | None] = mapped_column(Json, nullable=True, default=None)


class ConversationRow(Base):
    """A thread of one agent: its own messages, context window (compaction state) and queue of runs;
    the agent's blocks and tools are shared by all its threads. The agent's default thread (no
    conversation) keeps its context state on the agent row."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_agent_seq", "agent_id", "seq"),)

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    summary: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(255))
    model_settings: Mapped[dict[str, Any] | None] = mapped_column(Json)
    context_window_limit: Mapped[int | None] = mapped_column(Integer)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # As on the agent row, for this thread: compaction state and the approval it waits on.
    context_start_seq: Mapped[int | None] = mapped_column(SeqKey)
    context_summary: Mapped[str | None] = mapped_column(Text)
    pending_approval_id: Mapped[str | None] = mapped_column(String(64))


class RunEventRow(Base):
    """One event of a run streamed token by token (``stream_tokens``): a delta of a message being
    generated, or a whole message. ``body`` is the event as sent, without its ``seq_id`` (the ``seq``)."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_seq", "run_id", "seq"),)

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    body: Mapped[dict[str, Any]] = mapped_column(Json)


class StepRow(Base):
    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_run_seq", "run_id", "seq"),)

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))
    model_handle: Mapped[str] = mapped_column(String(255))
    provider_name: Mapped[str] = mapped_column(String(64))
    model_endpoint: Mapped[str | None] = mapped_column(Text)
    context_window_limit: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int | None] = mapped_column(Integer)
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    error_type: Mapped[str | None] = mapped_column(String(128))
    error_data: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PassageRow(Base):
    """One archival-memory passage of an agent.

    ``embedding`` is float32 little-endian bytes on SQLite (what sqlite-vec reads) and on PostgreSQL
    without pgvector; where pgvector is installed the migration makes it a ``vector`` column instead.
    All vector reads and writes go through ``db/vectors.py``, which knows which one it is.
    """

    __tablename__ = "passages"
    __table_args__ = (Index("ix_passages_agent_seq", "agent_id", "seq"),)

    seq: Mapped[int] = mapped_column(SeqKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_model: Mapped[str] = mapped_column(String(255))
    embedding_dim: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PassageTagRow(Base):
    """A passage's tags, one row each, so that "any"/"all" tag filters are plain SQL on both backends."""

    __tablename__ = "passage_tags"
    __table_args__ = (Index("ix_passage_tags_agent_tag", "agent_id", "tag"),)

    passage_id: Mapped[str] = mapped_column(ForeignKey("passages.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64))


class FileRow(Base):
    """An image a message refers to by ``file_id`` (stored once, not inline in every message body)."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    media_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
