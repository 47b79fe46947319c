"""Cursor pagination over the ``seq`` column, with Letta's ``before``/``after``/``limit``/``order``.

``after`` continues in the requested order (the SDK's next page); ``before`` walks back from a cursor
and still returns the page in the requested order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.errors import NotFound
from agenthost.pages import Page


async def paginate(session: AsyncSession, row_cls: Any, stmt: Select[Any], page: Page) -> list[Any]:
    """Apply the cursor to ``stmt`` (a select of ``row_cls``) and return one page of rows."""
    seq = row_cls.seq
    desc = page.order == "desc"
    if page.after is not None:
        after_seq = await _cursor_seq(session, row_cls, page.after)
        stmt = stmt.where(seq < after_seq if desc else seq > after_seq)
    if page.before is not None:
        before_seq = await _cursor_seq(session, row_cls, page.before)
        stmt = stmt.where(seq > before_seq if desc else seq < before_seq)
    backwards = page.before is not None and page.after is None
    # Walking back from `before` takes the rows nearest the cursor, then restores the requested order.
    ascending = desc if backwards else not desc
    stmt = stmt.order_by(seq.asc() if ascending else seq.desc()).limit(page.checked_limit())
    rows = list((await session.scalars(stmt)).all())
    if backwards:
        rows.reverse()
    return rows


async def paginate_by(
    session: AsyncSession, row_cls: Any, stmt: Select[Any], page: Page, key: ColumnElement[Any]
) -> list[Any]:
    """``paginate`` in the order of ``key`` (a never-null expression of the row), ties broken by ``seq``."""
    seq = row_cls.seq
    desc = page.order == "desc"

    async def past(cursor_id: str, *, below: bool) -> ColumnElement[bool]:
        # The rows strictly below (or above) the cursor's (key, seq) position.
        found = (await session.execute(select(key, seq).where(row_cls.id == cursor_id))).first()
        if found is None:
            raise NotFound(f"cursor '{cursor_id}' does not name an existing item")
        k, s = found
        if below:
            return or_(key < k, and_(key == k, seq < s))
        return or_(key > k, and_(key == k, seq > s))

    if page.after is not None:
        stmt = stmt.where(await past(page.after, below=desc))
    if page.before is not None:
        stmt = stmt.where(await past(page.before, below=not desc))
    backwards = page.before is not None and page.after is None
    ascending = desc if backwards else not desc
    order = (key.asc(), seq.asc()) if ascending else (key.desc(), seq.desc())
    rows = list((await session.scalars(stmt.order_by(*order).limit(page.checked_limit()))).all())
    if backwards:
        rows.reverse()
    return rows


async def _cursor_seq(session: AsyncSession, row_cls: Any, cursor_id: str) -> int:
    value = await session.scalar(select(row_cls.seq).where(row_cls.id == cursor_id))
    if value is None:
        raise NotFound(f"cursor '{cursor_id}' does not name an existing item")
    return int(value)
