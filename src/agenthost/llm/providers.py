"""Which providers this server can serve, and the handle → client resolution (``provider/model``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from agenthost.errors import InvalidArgument
from agenthost.llm.base import LLMClient
from agenthost.llm.openai_compat import OpenAICompatClient
from agenthost.settings import Settings

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
            configured = ", ".join(self.names) or "none (set OPENAI_API_KEY or OPENAI_BASE_URL)"
            raise InvalidArgument(
                f"unknown model provider '{provider}' in '{handle}'; configured: {configured}", loc=loc
            )
        return client, model

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
                    models = list(self._settings.openai_models)
                self._model_cache[name] = (time.monotonic(), models)
            out.extend((f"{name}/{m}", client, m) for m in models)
        return out

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


def _from_settings(settings: Settings) -> dict[str, LLMClient]:
    clients: dict[str, LLMClient] = {}
    if settings.openai_api_key is not None or settings.openai_base_url is not None:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        clients["openai"] = OpenAICompatClient(
            api_key=key,
            base_url=settings.openai_base_url,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            retry_base_delay_s=settings.llm_retry_base_delay_s,
        )
    return clients
