"""Model listings and health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class LocalModelHealth(BaseModel):
    """The embedded local model, as the check at start (one token) and the requests since found it.

    ``status``: ``unchecked`` (not started yet: a process that runs no agents), ``starting``, ``ok`` or
    ``failed`` (with ``error`` saying why and what to do)."""

    handle: str
    status: Literal["unchecked", "starting", "ok", "failed"]
    error: str | None = None


class Health(BaseModel):
    status: str
    version: str
    # Only on a server that serves the local model.
    local_model: LocalModelHealth | None = None


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
