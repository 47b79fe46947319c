"""Typed dependencies that keep the handlers short."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from agenthost.container import Container
from agenthost.errors import AgentHostError
from agenthost.pages import MAX_PAGE, Page
from agenthost.schemas.common import Order
from agenthost.schemas.letta_messages import LETTA_MESSAGES, LettaMessage


class Unauthorized(AgentHostError):
    status_code = 401
    code = "unauthorized"


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool,
# a thread hop per dependency per request.
ContainerDep = Annotated[Container, Depends(get_container)]


def json_response(model: BaseModel) -> Response:
    """Serialise a wire model ourselves on the hottest routes (create_async, run polling).

    The model was validated when it was built; FastAPI would validate and serialise it a second time
    for ``response_model``, which is kept on the route for the OpenAPI document.
    """
    return Response(content=model.model_dump_json(), media_type="application/json")


def messages_response(messages: list[LettaMessage]) -> Response:
    """A page of messages, serialised ourselves as ``json_response`` does: each was validated once, when
    it was read from its row. The route's ``response_model`` documents them."""
    return Response(content=LETTA_MESSAGES.dump_json(messages), media_type="application/json")


async def require_password(request: Request) -> None:
    container: Container = request.app.state.container
    secret = container.settings.server_password
    if secret is None:
        return
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-bare-password", "")
    if not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
        raise Unauthorized("missing or wrong server password (send 'Authorization: Bearer <password>')")


def page_params(default_order: Order, default_limit: int) -> object:
    async def dependency(
        before: str | None = None,
        after: str | None = None,
        limit: int | None = Query(default=default_limit, ge=1, le=MAX_PAGE),
        order: Order = default_order,
        ascending: bool | None = Query(default=None, description="Legacy alias of order=asc"),
    ) -> Page:
        if ascending is not None and order == default_order:
            order = "asc" if ascending else "desc"
        return Page(before=before, after=after, limit=limit, order=order)

    return dependency
