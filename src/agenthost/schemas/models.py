"""Model listings and health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: str
    version: str


class LlmModel(BaseModel):
    """One servable model (``GET /v1/models/``); ``handle`` is what agents name (``provider/model``)."""

    model: str
    name: str
    handle: str
    display_name: str
    provider_type: str
    provider_name: str
    provider_category: Literal["base", "byok"] = "base"
    model_type: Literal["llm"] = "llm"
    model_endpoint_type: str
    model_endpoint: str | None = None
    context_window: int
    max_context_window: int
