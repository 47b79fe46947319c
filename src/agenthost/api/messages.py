"""/v1/agents/{agent_id}/messages: history, sync and async message requests, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from agenthost.api.deps import ContainerDep, json_response, messages_response, page_params
from agenthost.api.sse import sse_from_events
from agenthost.container import Container
from agenthost.pages import Page
from agenthost.runs.streams import StreamEvent
from agenthost.schemas.common import MessageType
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.schemas.messages import CancelRequest, LettaResponse, MessageCreateAsync, MessageCreateSync
from agenthost.schemas.runs import Run

router = APIRouter(prefix="/v1/agents/{agent_id}/messages", tags=["messages"])


@router.get("", response_model=list[LettaMessage])
async def list_messages(
    agent_id: str,
    container: ContainerDep,
    page: Annotated[Page, Depends(page_params("desc", 100))],
    include_return_message_types: list[MessageType] | None = Query(default=None),
    include_err: bool | None = None,
    use_assistant_message: bool = True,
    assistant_message_tool_name: str = "send_message",
    assistant_message_tool_kwarg: str = "message",
    conversation_id: str | None = None,
    group_id: str | None = None,
) -> Response:
    if conversation_id is not None:
        # One conversation of the agent (or "default": the agent's default thread).
        messages = await container.conversations.list_messages(
            conversation_id,
            page,
            agent_id=agent_id,
            include_types=include_return_message_types,
            include_err=include_err,
        )
    else:
        messages = await container.messages.list_for_agent(
            agent_id,
            page,
            include_types=include_return_message_types,
            include_err=include_err,
            use_assistant_message=use_assistant_message,
            assistant_tool_name=assistant_message_tool_name,
            assistant_tool_kwarg=assistant_message_tool_kwarg,
        )
    return messages_response(messages)


@router.post("", response_model=LettaResponse)
async def create_message(agent_id: str, body: MessageCreateSync, container: ContainerDep) -> Response:
    """The synchronous route: a durable run like any other, answered when it ends (or, with
    ``streaming``, streamed)."""
    if body.streaming:
        return await stream_new_run(agent_id, body, container)
    return json_response(
        await container.runs.create_and_wait(agent_id, body, conversation_id=body.conversation_id)
    )


@router.post("/stream", response_model=None)
async def stream_messages(
    agent_id: str, body: MessageCreateSync, container: ContainerDep
) -> StreamingResponse:
    """The same durable run as any other route, its events sent as they are committed."""
    return await stream_new_run(agent_id, body, container)


async def stream_new_run(
    agent_id: str, body: MessageCreateSync, container: Container, conversation_id: str | None = None
) -> StreamingResponse:
    """Start a run (in ``conversation_id``, else the body's, else the agent's default thread) and
    stream it."""
    run = await container.runs.create(
        agent_id,
        body,
        background=body.background,
        token_events=body.stream_tokens,
        conversation_id=conversation_id or body.conversation_id,
    )
    row = await container.streams.open(run.id)
    events = container.streams.follow(row, include_pings=body.include_pings)
    if not body.background and container.settings.stream_disconnect == "cancel":
        events = _cancel_on_disconnect(events, container, agent_id, run.id)
    return StreamingResponse(sse_from_events(events), media_type="text/event-stream")


async def _cancel_on_disconnect(
    events: AsyncIterator[StreamEvent], container: Container, agent_id: str, run_id: str
) -> AsyncIterator[StreamEvent]:
    """A foreground stream whose client went away before the run ended cancels the run."""
    ended = False
    try:
        async for event in events:
            yield event
        ended = True
    finally:
        if not ended:
            with anyio.CancelScope(shield=True):
                await container.cancellation.cancel_for_agent(agent_id, [run_id])


@router.post("/async", response_model=Run)
async def create_message_async(agent_id: str, body: MessageCreateAsync, container: ContainerDep) -> Response:
    """Commit the run and answer at once; the engine executes it (FIFO per thread: the agent's default
    thread, or the body's conversation)."""
    run = await container.runs.create(
        agent_id,
        body,
        background=True,
        callback_url=body.callback_url,
        conversation_id=body.conversation_id,
    )
    return json_response(run)


@router.post("/cancel")
async def cancel_messages(
    agent_id: str, container: ContainerDep, body: CancelRequest | None = None
) -> dict[str, str]:
    return await container.cancellation.cancel_for_agent(agent_id, body.run_ids if body else None)
