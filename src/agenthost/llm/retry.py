"""The one retry policy of every provider client: bounded, exponential, jittered, honouring Retry-After.

Each client says how its SDK's exceptions map to an ``LLMError`` (retryable or not) and a server's
requested delay; the loop here does the rest and logs every retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from agenthost.llm.base import LLMError

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_DELAY_S = 30.0

# (the error, the delay the server asked for) for an exception a retry may fix; None for others.
Classifier = Callable[[Exception], "tuple[LLMError, float | None] | None"]


async def with_retries(
    send: Callable[[], Awaitable[T]],
    classify: Classifier,
    *,
    max_retries: int,
    base_delay_s: float,
    label: str,
) -> T:
    """``send()`` until it succeeds, a non-retryable error, or ``max_retries`` retries; then ``LLMError``.

    Exceptions ``classify`` does not know propagate unchanged (cancellation included).
    """
    attempt = 0
    while True:
        try:
            return await send()
        except Exception as exc:
            classified = classify(exc)
            if classified is None:
                raise
            error, retry_after = classified
            if not error.retryable or attempt >= max_retries:
                if attempt:
                    error.args = (f"{error.args[0]} (after {attempt + 1} attempts)",)
                raise error from exc
        delay = retry_after if retry_after is not None else base_delay_s * (2**attempt)
        delay = min(delay, MAX_DELAY_S) * (0.8 + 0.4 * random.random())
        log.warning("%s call failed (%s); retry %d in %.2fs", label, error, attempt + 1, delay)
        attempt += 1
        await asyncio.sleep(delay)


def status_error(label: str, status: int, message: str) -> LLMError:
    """An HTTP error status as an ``LLMError``: 408, 409, 429 and every 5xx (Anthropic's 529
    "overloaded" included) may be retried."""
    retryable = status in RETRYABLE_STATUS or status >= 500
    return LLMError(f"{label} returned HTTP {status}: {message}", status_code=status, retryable=retryable)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The delay a server asked for (``retry-after-ms`` or ``retry-after`` in seconds), if any."""
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000.0
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_message(body: object, fallback: str, *, with_type: bool = False) -> str:
    """The ``error.message`` of a provider's JSON error body (prefixed by its ``type`` if asked)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and "message" in inner:
            kind = inner.get("type") if with_type else None
            return f"{kind}: {inner['message']}" if kind else str(inner["message"])
    return fallback
