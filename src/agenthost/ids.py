"""Letta-style resource ids: ``<prefix>-<uuid4>``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from agenthost.errors import InvalidArgument

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


def check_id(value: str, prefix: str, loc: Sequence[str | int] | None = None) -> str:
    """Reject ids that cannot be ours with a 422 naming the expected format (at ``loc``, or the path)."""
    if not re.fullmatch(f"{prefix}-{_UUID}", value):
        raise InvalidArgument(
            f"'{value}' is not a valid {prefix} id: expected the format '{prefix}-<uuid4>'",
            loc=loc if loc is not None else ("path", f"{prefix}_id"),
        )
    return value
