"""/v1/conversations/{conversation_id}: sending messages to a conversation, following, cancelling and
compacting it (its CRUD, fork and message history are in ``api/conversations.py``).

A conversation id may also be ``default`` with an ``agent_id`` (the agent's default thread, as the
agent routes use it) or, deprecated, an agent id (``services/threads.py``).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from agenthost.api.deps import ContainerDep
from agenthost.api.messages import stream_new_run
from agenthost.api.runs import follow_run
from agenthost.errors import InvalidArgument
from agenthost.schemas.compaction import CompactionRequest, CompactionResponse
from agenthost.schemas.messages import ConversationMessageRequest, LettaResponse
from agenthost.schemas.runs import RetrieveStreamRequest

router = APIRouter(prefix="/v1/conversations/{conversation_id}", tags=["conversations"])


@router.post("/messages", response_model=None)
async def send_message(
    conversation_id: str, body: ConversationMessageRequest, container: ContainerDep
) -> LettaResponse | StreamingResponse:
    """A run in the conversation: streamed (the default), or answered whole with ``streaming: false``."""
    thread = await container.threads.thread(conversation_id, body.agent_id)
    if body.conversation_id is not None and body.conversation_id != thread.conversation_id:
        raise InvalidArgument(
            f"the body names conversation '{body.conversation_id}', the path '{conversation_id}'",
            loc=("body", "conversation_id"),
        )
    if body.streaming:
        return await stream_new_run(thread.agent_id, body, container, thread.conversation_id)
    return await container.runs.create_and_wait(thread.agent_id, body, conversation_id=thread.conversation_id)


@router.post("/stream", response_model=None)
async def stream_conversation(
    conversation_id: str, container: ContainerDep, body: RetrieveStreamRequest | None = None
) -> StreamingResponse:
    """Follow a run of the conversation: ``run_id``, or the run an ``otid`` started, or its latest."""
    body = body or RetrieveStreamRequest()
    return follow_run(container, await container.threads.run_to_follow(conversation_id, body), body)


@router.post("/cancel")
async def cancel_conversation(
    conversation_id: str, container: ContainerDep, agent_id: str | None = None
) -> dict[str, str]:
    """Cancel the conversation's active runs (only this conversation's) and close its pending approval."""
    thread = await container.threads.thread(conversation_id, agent_id)
    if thread.conversation_id is None:
        return await container.cancellation.cancel_for_agent(thread.agent_id, None)
    return await container.cancellation.cancel_for_conversation(thread.conversation_id)


@router.post("/compact", response_model=CompactionResponse)
async def compact_conversation(
    conversation_id: str, container: ContainerDep, body: CompactionRequest | None = None
) -> CompactionResponse:
    """Summarise the conversation's older messages now, as a run in its queue."""
    body = body or CompactionRequest()
    thread = await container.threads.thread(conversation_id, body.agent_id)
    return await container.runs.compact(thread.agent_id, body, conversation_id=thread.conversation_id)


@router.post("/recompile", response_model=str)
async def recompile_conversation(
    conversation_id: str,
    container: ContainerDep,
    dry_run: bool = False,
    agent_id: str | None = None,
    body: CompactionRequest | None = None,
) -> str:
    """The system prompt the conversation's next LLM call gets, from the blocks' current values.

    The prompt is compiled at every step from the shared blocks, so there is nothing stored to
    rebuild: ``dry_run`` changes nothing."""
    thread = await container.threads.thread(conversation_id, agent_id or (body.agent_id if body else None))
    return await container.threads.system_prompt(thread)
