"""Images in message input: stored once as files, referred to by ``file_id`` in the message body.

A base64 image (or a ``data:`` URL) sent with a message is decoded, checked and stored in ``files``;
the message keeps a ``letta`` source naming it, so history reads stay small however many images an
agent has seen. A client may send a ``letta`` source naming a file stored earlier for the same agent.
Plain http(s) URLs pass through to the provider as they are.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from agenthost.db import files as files_db
from agenthost.db.database import Session
from agenthost.errors import InvalidArgument
from agenthost.schemas.content import IMAGE_MEDIA_TYPES

MAX_IMAGE_BYTES = 20 * 1024 * 1024

# Leading bytes of each accepted format: a declared media type must match the data.
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


async def store_images(session: Session, agent_id: str, inputs: list[dict[str, Any]]) -> None:
    """Replace inline image data in ``inputs`` (dumped input messages) by stored file references."""
    for i, message in enumerate(inputs):
        content = message.get("content")
        if message.get("type", "message") != "message" or not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if part.get("type") != "image":
                continue
            loc = ("body", "messages", i, "content", j, "source")
            part["source"] = await _stored_source(session, agent_id, part["source"], loc)


async def _stored_source(
    session: Session, agent_id: str, source: dict[str, Any], loc: tuple[str | int, ...]
) -> dict[str, Any]:
    kind = source.get("type")
    if kind == "url" and not str(source.get("url", "")).startswith("data:"):
        return source
    if kind == "letta" and not source.get("data"):
        found = await files_db.file_media_type(session, source["file_id"], agent_id)
        if found is None:
            raise InvalidArgument(f"image file '{source['file_id']}' is not stored for this agent", loc=loc)
        return {
            "type": "letta",
            "file_id": source["file_id"],
            "media_type": found,
            "detail": source.get("detail"),
        }
    if kind == "url":
        media_type, data = _parse_data_url(str(source["url"]), loc)
    else:
        media_type, data = str(source.get("media_type") or ""), _decode(str(source.get("data", "")), loc)
    _check(media_type, data, loc)
    file_id = await files_db.insert_file(session, agent_id, media_type, data)
    return {"type": "letta", "file_id": file_id, "media_type": media_type, "detail": source.get("detail")}


def _parse_data_url(url: str, loc: tuple[str | int, ...]) -> tuple[str, bytes]:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise InvalidArgument("an image data URL must look like 'data:image/png;base64,<data>'", loc=loc)
    return header[len("data:") : -len(";base64")], _decode(payload, loc)


def _decode(data: str, loc: tuple[str | int, ...]) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("image data is not valid base64", loc=loc) from None


def _check(media_type: str, data: bytes, loc: tuple[str | int, ...]) -> None:
    if media_type not in IMAGE_MEDIA_TYPES:
        raise InvalidArgument(
            f"unsupported image media type '{media_type}'; use one of {list(IMAGE_MEDIA_TYPES)}", loc=loc
        )
    if not data:
        raise InvalidArgument("image data is empty", loc=loc)
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidArgument(f"image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB", loc=loc)
    if not data.startswith(_MAGIC[media_type]) or (media_type == "image/webp" and data[8:12] != b"WEBP"):
        raise InvalidArgument(f"image data is not a {media_type} image", loc=loc)
