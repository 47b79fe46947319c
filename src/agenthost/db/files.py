"""Reading stored image files back for a provider request."""

from __future__ import annotations

import base64

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthost.db.rows import FileRow


async def image_data_urls(conn: AsyncConnection, file_ids: set[str]) -> dict[str, str]:
    """file_id → ``data:<media type>;base64,...`` for the files that exist."""
    if not file_ids:
        return {}
    rows = await conn.execute(
        select(FileRow.id, FileRow.media_type, FileRow.data).where(FileRow.id.in_(sorted(file_ids)))
    )
    return {r.id: f"data:{r.media_type};base64,{base64.b64encode(r.data).decode()}" for r in rows}
