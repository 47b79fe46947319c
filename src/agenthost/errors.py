"""The one error hierarchy. Domain code raises these; a single handler in the API maps them to JSON."""

from __future__ import annotations

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


class NotFound(AgentHostError):
    status_code = 404
    code = "not_found"


class Conflict(AgentHostError):
    status_code = 409
    code = "conflict"


class PendingApproval(Conflict):
    code = "PENDING_APPROVAL"


class ServiceUnavailable(AgentHostError):
    status_code = 503
    code = "unavailable"
