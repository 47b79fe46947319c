"""GET /v1/health/"""

from __future__ import annotations

from fastapi import APIRouter

from agenthost import __version__
from agenthost.api.deps import ContainerDep
from agenthost.schemas.models import Health, LocalModelHealth

router = APIRouter(prefix="/v1/health", tags=["health"])


@router.get("/", response_model=Health, response_model_exclude_none=True)
async def health(container: ContainerDep) -> Health:
    """The server is up (``status``); ``local_model`` says whether the embedded model works."""
    local = container.providers.local_model()
    if local is None:
        return Health(status="ok", version=__version__)
    state = LocalModelHealth(
        handle=f"local/{local.model_name}", status=local.health.status, error=local.health.error
    )
    return Health(status="ok", version=__version__, local_model=state)
