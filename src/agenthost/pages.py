"""A page of a list route: Letta's ``before``/``after``/``limit``/``order``.

Built by the API from query parameters, passed through the services, applied by ``db/pagination.py``:
it lives here, beside ``ids`` and ``errors``, so that every layer can name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agenthost.errors import InvalidArgument

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
