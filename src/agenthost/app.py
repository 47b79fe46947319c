"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from agenthost import __version__
from agenthost.api import (
    agent_tools,
    agents,
    archival,
    blocks,
    compaction,
    conversation_messages,
    conversations,
    core_memory,
    health,
    messages,
    models,
    runs,
    tools,
)
from agenthost.api.deps import require_password
from agenthost.api.errors import install_error_handlers
from agenthost.container import Container
from agenthost.llm.providers import Providers
from agenthost.settings import Settings


def create_app(settings: Settings, *, providers: Providers | None = None, run_worker: bool = True) -> FastAPI:
    """Build the app; storage, engine and providers start in the lifespan (migrations first)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await Container.start(settings, providers, run_worker=run_worker)
        app.state.container = container
        try:
            yield
        finally:
            await container.stop()

    app = FastAPI(title="agenthost", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    protected = [Depends(require_password)]
    for module in (
        models,
        agents,
        agent_tools,
        core_memory,
        tools,
        blocks,
        messages,
        compaction,
        runs,
        conversations,
        conversation_messages,
    ):
        app.include_router(module.router, dependencies=protected)
    app.include_router(archival.router, dependencies=protected)
    app.include_router(archival.passages_router, dependencies=protected)
    return app
