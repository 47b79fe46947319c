"""Stored image files: written when a message brings one, read back for a provider request."""

from __future__ import annotations

import base64

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from agenthost.db.rows import FileRow
from agenthost.db.types import utcnow
from agenthost.ids import new_id


async def image_data_urls(conn: AsyncConnection, file_ids: set[str]) -> dict[str, str]:
    """file_id → ``data:<media type>;base64,...`` for the files that exist."""
    if not file_ids:
        return {}
    rows = await conn.execute(
        select(FileRow.id, FileRow.media_type, FileRow.data).where(FileRow.id.in_(sorted(file_ids)))
    )
    return {r.id: f"data:{r.media_type};base64,{base64.b64encode(r.data).decode()}" for r in rows}


async def file_media_type(session: AsyncSession, file_id: str, agent_id: str) -> str | None:
    """The media type of the agent's stored file; None if the agent has no such file."""
    return await session.scalar(
        select(FileRow.media_type).where(FileRow.id == file_id, FileRow.agent_id == agent_id)
    )


async def insert_file(session: AsyncSession, agent_id: str, media_type: str, data: bytes) -> str:
    """Store a file of the agent; its new id."""
    file_id = new_id("file")
    await session.execute(
        insert(FileRow).values(
            id=file_id,
            agent_id=agent_id,
            media_type=media_type,
            size=len(data),
            data=data,
            created_at=utcnow(),
        )
    )
    return file_id
