"""Server-Sent Events framing for message results."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from agenthost.schemas.messages import LettaResponse


async def sse_from_result(result: LettaResponse) -> AsyncIterator[bytes]:
    """A finished result as the SSE event sequence the SDK's stream parser expects."""
    for message in result.messages:
        yield _event(message)
    yield _event(result.stop_reason.model_dump(mode="json"))
    yield _event(result.usage.model_dump(mode="json"))
    yield b"data: [DONE]\n\n"


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
