"""Wiring: build every long-lived object from one ``Settings``, and tear them down in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from agenthost.agent.loop import AgentLoop
from agenthost.db.database import Database
from agenthost.db.run_store import RunStore
from agenthost.db.signals import RunSignals
from agenthost.engine.base import RunEngine
from agenthost.engine.embedded import EmbeddedEngine
from agenthost.llm.providers import Providers
from agenthost.memory.embeddings import Embedders
from agenthost.runs.callbacks import CallbackDispatcher
from agenthost.runs.cancellation import RunCancellation
from agenthost.runs.service import RunService
from agenthost.runs.streams import RunStreams
from agenthost.services.agent_tools import AgentToolService
from agenthost.services.agents import AgentService
from agenthost.services.blocks import BlockService
from agenthost.services.conversations import ConversationService
from agenthost.services.messages import MessageService
from agenthost.services.passages import PassageService
from agenthost.services.threads import ThreadService
from agenthost.services.tools import ToolService
from agenthost.settings import Settings
from agenthost.tools.executor import ToolExecutor
from agenthost.tools.sandbox import Sandbox

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    db: Database
    providers: Providers
    callbacks: CallbackDispatcher
    engine: RunEngine
    agents: AgentService
    blocks: BlockService
    conversations: ConversationService
    messages: MessageService
    runs: RunService
    cancellation: RunCancellation
    streams: RunStreams
    threads: ThreadService
    signals: RunSignals
    tools: ToolService
    agent_tools: AgentToolService
    sandbox: Sandbox
    passages: PassageService
    # The local model's check at start: one token, in the background (``GET /v1/health/`` reports it).
    local_check: asyncio.Task[object] | None = None

    @classmethod
    async def start(
        cls, settings: Settings, providers: Providers | None = None, *, run_worker: bool = True
    ) -> Container:
        """Wire everything from ``settings``. ``run_worker=False`` (``serve --no-worker``) leaves the
        runs to other processes' workers (distributed engine only)."""
        db = Database(settings.sqlalchemy_url(), pool_size=settings.db_pool_size)
        try:
            if settings.engine == "embedded":
                # The embedded engine owns its database: a second one would break per-agent FIFO.
                await db.acquire_engine_lock(settings.data_dir)
            await db.migrate()
            tools = ToolService(db, settings)
            await tools.sync_builtins()
        except BaseException:
            await db.close()
            raise
        providers = providers or Providers(settings)
        callbacks = CallbackDispatcher(db, settings)
        sandbox = Sandbox(
            pool_size=settings.sandbox_pool_size,
            timeout_s=settings.tool_timeout_s,
            memory_mb=settings.tool_memory_mb,
        )
        signals = RunSignals(settings.psycopg_conninfo() if settings.is_postgres else None)
        store = RunStore(db, signals, flush_interval_s=settings.stream_flush_interval_s)
        passages = PassageService(db, Embedders(settings), settings)
        executor = ToolExecutor(
            sandbox,
            passages,
            store.search_messages,
            timeout_s=settings.tool_timeout_s,
            memory_mb=settings.tool_memory_mb,
        )
        loop = AgentLoop(
            store,
            providers,
            executor,
            on_finished=callbacks.notify,
            thinking_budget_tokens=settings.thinking_budget_tokens,
        )
        engine: RunEngine
        if settings.engine == "procrastinate":
            from agenthost.engine.distributed import DistributedEngine

            engine = DistributedEngine(db, settings, loop, callbacks.notify, run_worker=run_worker)
        else:
            engine = EmbeddedEngine(
                db,
                loop,
                max_concurrent=settings.max_concurrent_runs,
                shutdown_grace_s=settings.shutdown_grace_s,
            )
        container = cls(
            settings=settings,
            db=db,
            providers=providers,
            callbacks=callbacks,
            engine=engine,
            agents=AgentService(db, settings, providers),
            blocks=BlockService(db),
            conversations=ConversationService(db, providers),
            messages=MessageService(db),
            runs=RunService(db, engine, providers, settings),
            cancellation=RunCancellation(db, engine, callbacks),
            streams=RunStreams(db, signals, ping_interval_s=settings.stream_ping_interval_s),
            threads=ThreadService(db),
            signals=signals,
            tools=tools,
            agent_tools=AgentToolService(db, executor),
            sandbox=sandbox,
            passages=passages,
        )
        await passages.start()
        await sandbox.start()
        await engine.start()
        await callbacks.start()
        local = providers.local_model()
        if local is not None and run_worker:
            container.local_check = asyncio.create_task(local.check())
        return container

    async def stop(self) -> None:
        if self.local_check is not None:
            self.local_check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.local_check
        await self.engine.stop()
        await self.signals.close()
        await self.passages.close()  # the local embedding model's process, the embeddings client
        await self.sandbox.close()
        await self.callbacks.close()
        await self.providers.close()
        await self.db.close()
