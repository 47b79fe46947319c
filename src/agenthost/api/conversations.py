"""/v1/conversations: create, retrieve, list, update, delete, fork, and a conversation's message history.

Sending messages to a conversation, following and cancelling its runs are in ``api/conversation_messages.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from agenthost.api.deps import ContainerDep, messages_response, page_params
from agenthost.pages import Page
from agenthost.schemas.common import MessageType
from agenthost.schemas.conversations import (
    ArchiveStatus,
    Conversation,
    ConversationCreate,
    ConversationOrderBy,
    ConversationUpdate,
)
from agenthost.schemas.letta_messages import LettaMessage

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.post("/", response_model=Conversation)
async def create_conversation(
    agent_id: str, container: ContainerDep, body: ConversationCreate | None = None
) -> Conversation:
    return await container.conversations.create(agent_id, body or ConversationCreate())


@router.get("/", response_model=list[Conversation])
async def list_conversations(
    container: ContainerDep,
    page: Annotated[Page, Depends(page_params("desc", 50))],
    agent_id: str | None = None,
    archive_status: ArchiveStatus = "unarchived",
    summary_search: str | None = None,
    order_by: ConversationOrderBy = "created_at",
) -> list[Conversation]:
    return await container.conversations.list_conversations(
        page,
        agent_id=agent_id,
        archive_status=archive_status,
        summary_search=summary_search,
        order_by=order_by,
    )


@router.get("/{conversation_id}", response_model=Conversation)
async def retrieve_conversation(conversation_id: str, container: ContainerDep) -> Conversation:
    return await container.conversations.retrieve(conversation_id)


@router.patch("/{conversation_id}", response_model=Conversation)
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, container: ContainerDep
) -> Conversation:
    return await container.conversations.update(conversation_id, body)


@router.delete("/{conversation_id}")
async def delete_conversation(conversation_id: str, container: ContainerDep) -> dict[str, str]:
    # Live runs of the conversation are cancelled first, so no loop keeps writing into a deleted thread.
    await container.cancellation.cancel_for_conversation(conversation_id)
    await container.conversations.delete(conversation_id)
    return {"message": f"conversation '{conversation_id}' deleted"}


@router.post("/{conversation_id}/fork", response_model=Conversation)
async def fork_conversation(
    conversation_id: str,
    container: ContainerDep,
    agent_id: str | None = None,
    hidden: bool = False,
    message_id: str | None = None,
) -> Conversation:
    return await container.conversations.fork(
        conversation_id, agent_id=agent_id, hidden=hidden, message_id=message_id
    )


@router.get("/{conversation_id}/messages", response_model=list[LettaMessage])
async def list_conversation_messages(
    conversation_id: str,
    container: ContainerDep,
    page: Annotated[Page, Depends(page_params("desc", 100))],
    agent_id: str | None = None,
    include_return_message_types: list[MessageType] | None = Query(default=None),
    include_err: bool | None = None,
    order_by: Literal["created_at"] = "created_at",
    group_id: str | None = None,
) -> Response:
    # order_by has one value and groups are not supported: both are accepted and have no effect.
    del order_by, group_id
    messages = await container.conversations.list_messages(
        conversation_id,
        page,
        agent_id=agent_id,
        include_types=include_return_message_types,
        include_err=include_err,
    )
    return messages_response(messages)
