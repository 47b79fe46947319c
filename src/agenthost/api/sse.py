"""Server-Sent Events framing: one ``data:`` frame per event, then ``[DONE]``, as the SDK parses them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any


async def sse_from_events(events: AsyncIterable[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Events as they come, then the end of the stream."""
    async for event in events:
        yield _event(event)
    yield b"data: [DONE]\n\n"


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
