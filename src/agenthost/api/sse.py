"""Server-Sent Events framing: one ``data:`` frame per event, then ``[DONE]``, as the SDK parses them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from pydantic import BaseModel


async def sse_from_events(events: AsyncIterable[BaseModel | dict[str, Any]]) -> AsyncIterator[bytes]:
    """Events as they come, then the end of the stream."""
    async for event in events:
        yield _event(event)
    yield b"data: [DONE]\n\n"


def _event(payload: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(payload, BaseModel):
        return b"data: " + payload.model_dump_json().encode() + b"\n\n"
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
