"""/v1/runs: retrieve, list, messages, usage, steps, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from agenthost.api.deps import ContainerDep, json_response, messages_response, page_params
from agenthost.api.sse import sse_from_events
from agenthost.pages import Page
from agenthost.schemas.common import StopReason
from agenthost.schemas.letta_messages import LettaMessage
from agenthost.schemas.runs import RetrieveStreamRequest, Run, RunUsage, Step

if TYPE_CHECKING:
    from agenthost.container import Container
    from agenthost.db.runs import RunRecord

router = APIRouter(prefix="/v1/runs", tags=["runs"])


@router.get("/", response_model=list[Run])
async def list_runs(
    container: ContainerDep,
    page: Annotated[Page, Depends(page_params("desc", 100))],
    agent_id: str | None = None,
    agent_ids: list[str] | None = Query(default=None),
    statuses: list[str] | None = Query(default=None),
    stop_reason: StopReason | None = None,
    background: bool | None = None,
    active: bool = False,
    conversation_id: str | None = None,
) -> list[Run]:
    ids = [*([agent_id] if agent_id else []), *(agent_ids or [])]
    return await container.runs.list_runs(
        page,
        agent_ids=ids,
        statuses=statuses,
        stop_reason=stop_reason,
        background=background,
        active=active,
        conversation_id=conversation_id,
    )


@router.get("/{run_id}", response_model=Run)
async def retrieve_run(run_id: str, container: ContainerDep) -> Response:
    return json_response(await container.runs.retrieve(run_id))


@router.delete("/{run_id}")
async def delete_run(run_id: str, container: ContainerDep) -> dict[str, str]:
    await container.cancellation.delete(run_id)
    return {"message": f"run '{run_id}' deleted"}


@router.get("/{run_id}/messages", response_model=list[LettaMessage])
async def list_run_messages(
    run_id: str, container: ContainerDep, page: Annotated[Page, Depends(page_params("asc", 100))]
) -> Response:
    return messages_response(await container.runs.messages(run_id, page))


@router.get("/{run_id}/usage", response_model=RunUsage)
async def retrieve_run_usage(run_id: str, container: ContainerDep) -> RunUsage:
    return await container.runs.usage(run_id)


@router.get("/{run_id}/steps", response_model=list[Step])
async def list_run_steps(
    run_id: str, container: ContainerDep, page: Annotated[Page, Depends(page_params("desc", 100))]
) -> list[Step]:
    return await container.runs.steps(run_id, page)


@router.post("/{run_id}/stream", response_model=None)
async def stream_run(
    run_id: str, container: ContainerDep, body: RetrieveStreamRequest | None = None
) -> StreamingResponse:
    """The run's events from ``starting_after`` on (replayed, then live), until it ends."""
    return follow_run(container, await container.streams.open(run_id), body or RetrieveStreamRequest())


def follow_run(container: Container, run: RunRecord, body: RetrieveStreamRequest) -> StreamingResponse:
    """An SSE response following ``run`` as ``body`` asks (cursor, pings, poll interval, page size)."""
    events = container.streams.follow(
        run,
        starting_after=body.starting_after,
        include_pings=body.include_pings is not False,
        poll_interval_s=body.poll_interval or 0.1,
        batch_size=body.batch_size or 100,
    )
    return StreamingResponse(sse_from_events(events), media_type="text/event-stream")
