"""GET /v1/health/"""

from __future__ import annotations

from fastapi import APIRouter

from agenthost import __version__
from agenthost.schemas.models import Health

router = APIRouter(prefix="/v1/health", tags=["health"])


@router.get("/", response_model=Health)
async def health() -> Health:
    return Health(status="ok", version=__version__)
