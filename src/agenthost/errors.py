"""The one error hierarchy. Domain code raises these; a single handler in the API maps them to JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class AgentHostError(Exception):
    """Base of every error we raise on purpose. ``status_code`` and ``code`` go on the wire."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class InvalidArgument(AgentHostError):
    status_code = 422
    code = "invalid_argument"

    def __init__(
        self, message: str, *, loc: Sequence[str | int] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        # `loc` names the offending field as FastAPI's own validation errors do (["body", "model"]).
        if loc is not None:
            extra = {**(extra or {}), "errors": [{"loc": list(loc), "msg": message, "type": self.code}]}
        super().__init__(message, extra=extra)


class NotFound(AgentHostError):
    status_code = 404
    code = "not_found"


class Conflict(AgentHostError):
    status_code = 409
    code = "conflict"


class PendingApproval(Conflict):
    code = "PENDING_APPROVAL"


class TooManyRequests(AgentHostError):
    """The agent already has as many queued runs as the server accepts; retry after ``retry_after_s``."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, extra={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s


class ServiceUnavailable(AgentHostError):
    status_code = 503
    code = "unavailable"
