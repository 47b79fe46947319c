"""Cursor pagination over the ``seq`` column, with Letta's ``before``/``after``/``limit``/``order``.

``after`` continues in the requested order (the SDK's next page); ``before`` walks back from a cursor
and still returns the page in the requested order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.errors import InvalidArgument, NotFound

T = TypeVar("T")

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Page:
    before: str | None = None
    after: str | None = None
    limit: int | None = 50
    order: Literal["asc", "desc"] = "desc"

    def checked_limit(self) -> int:
        if self.limit is None:
            return MAX_PAGE
        if self.limit < 1 or self.limit > MAX_PAGE:
            raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}, got {self.limit}")
        return self.limit


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


async def _cursor_seq(session: AsyncSession, row_cls: Any, cursor_id: str) -> int:
    value = await session.scalar(select(row_cls.seq).where(row_cls.id == cursor_id))
    if value is None:
        raise NotFound(f"cursor '{cursor_id}' does not name an existing item")
    return int(value)
