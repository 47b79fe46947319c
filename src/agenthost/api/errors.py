"""One mapping from our errors (and FastAPI's validation errors) to JSON."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agenthost.db.database import DATABASE_ERRORS, database_failure, driver_error
from agenthost.errors import AgentHostError, TooManyRequests

log = logging.getLogger(__name__)

# How long a client told that the database is busy or away should wait before trying again.
_DATABASE_RETRY_AFTER_S = 1


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AgentHostError)
    async def _ours(_request: Request, exc: AgentHostError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, TooManyRequests) else None
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": exc.message, "code": exc.code, **exc.extra},
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse(
            status_code=422,
            content={"detail": f"invalid request: {summary}", "code": "invalid_argument", "errors": errors},
        )

    # The database failing under a request is the server's trouble, not the request's: a 503 that says
    # so (and when to retry) rather than a bare 500.
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        failure = database_failure(exc)
        if failure == "busy":
            log.warning("no database connection came free in time: %s", exc)
            return _database_unavailable("the server is overloaded: no database connection came free in time")
        if failure == "refused":
            # A statement the database refused: our bug, answered as one (a 500, logged with its trace).
            log.error("database error under %s %s", request.method, request.url.path, exc_info=exc)
            return JSONResponse(
                status_code=500, content={"detail": "internal error", "code": "internal_error"}
            )
        log.error("the database failed under a request: %s", driver_error(exc))
        return _database_unavailable("the database is unavailable")

    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, _database_error)


def _database_unavailable(message: str) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": f"{message}; retry shortly", "code": "unavailable"},
        headers={"Retry-After": str(_DATABASE_RETRY_AFTER_S)},
    )
