"""POST /v1/agents/{agent_id}/summarize (``agents.messages.compact``): force a compaction."""

from __future__ import annotations

from fastapi import APIRouter

from agenthost.api.deps import ContainerDep
from agenthost.schemas.compaction import CompactionRequest, CompactionResponse

router = APIRouter(prefix="/v1/agents/{agent_id}", tags=["messages"])


@router.post("/summarize", response_model=CompactionResponse)
async def compact(
    agent_id: str, container: ContainerDep, body: CompactionRequest | None = None
) -> CompactionResponse:
    """Summarise the agent's oldest in-context messages now, as it does when its context fills up."""
    return await container.runs.compact(agent_id, body or CompactionRequest())
