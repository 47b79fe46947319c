"""GET /v1/models/: the handles this server can serve."""

from __future__ import annotations

from fastapi import APIRouter, Query

from agenthost.api.deps import ContainerDep
from agenthost.schemas.models import LlmModel

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("/", response_model=list[LlmModel])
async def list_models(
    container: ContainerDep,
    provider_name: str | None = None,
    provider_type: str | None = None,
    provider_category: list[str] | None = Query(default=None),
) -> list[LlmModel]:
    providers = container.providers
    models = [
        LlmModel(
            model=model,
            name=model,
            handle=handle,
            display_name=model,
            provider_type=client.endpoint_type,
            provider_name=client.provider_name,
            model_endpoint_type=client.endpoint_type,
            model_endpoint=client.endpoint,
            # After list_handles: a server's listing may have reported the window (vLLM's max_model_len).
            context_window=providers.context_window(handle),
            max_context_window=providers.context_window(handle),
        )
        for handle, client, model in await providers.list_handles()
    ]
    return [
        m
        for m in models
        if (provider_name is None or m.provider_name == provider_name)
        and (provider_type is None or m.provider_type == provider_type)
        and (not provider_category or m.provider_category in provider_category)
    ]
