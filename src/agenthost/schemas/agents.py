"""Agents on the wire: create/update bodies and ``AgentState``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from agenthost.schemas.blocks import Block, BlockCreate
from agenthost.schemas.common import StopReason, WireModel
from agenthost.schemas.letta_messages import ApprovalRequestMessage
from agenthost.schemas.tools import Tool

AgentType = Literal[
    "memgpt_agent",
    "memgpt_v2_agent",
    "letta_v1_agent",
    "react_agent",
    "workflow_agent",
    "split_thread_agent",
    "sleeptime_agent",
    "voice_convo_agent",
    "voice_sleeptime_agent",
]
# The agent types whose loop this server runs. The others are accepted names in Letta's API but
# belong to retired loops; refusing them is clearer than silently running something else.
SUPPORTED_AGENT_TYPES = ("letta_v1_agent",)

AgentInclude = Literal[
    "agent.blocks",
    "agent.identities",
    "agent.managed_group",
    "agent.pending_approval",
    "agent.secrets",
    "agent.sources",
    "agent.tags",
    "agent.tools",
]


class AgentCreate(WireModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    system: str | None = None
    agent_type: AgentType = "letta_v1_agent"
    model: str | None = None
    context_window_limit: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    embedding: str | None = None
    memory_blocks: list[BlockCreate] | None = None
    block_ids: list[str] | None = None
    tools: list[str] | None = None
    tool_ids: list[str] | None = None
    include_base_tools: bool = True
    tool_rules: list[dict[str, Any]] | None = None
    tags: list[str] | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    tool_exec_environment_variables: dict[str, str] | None = None
    # Newer SDKs' name for tool_exec_environment_variables; both are merged.
    secrets: dict[str, str] | None = None
    timezone: str | None = None
    message_buffer_autoclear: bool = False

    @field_validator("agent_type")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_AGENT_TYPES:
            raise ValueError(
                f"agent_type '{value}' is not supported; use one of {list(SUPPORTED_AGENT_TYPES)}"
            )
        return value


class AgentUpdate(WireModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    system: str | None = None
    model: str | None = None
    context_window_limit: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    tags: list[str] | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    tool_rules: list[dict[str, Any]] | None = None
    tool_ids: list[str] | None = None
    tool_exec_environment_variables: dict[str, str] | None = None
    secrets: dict[str, str] | None = None
    timezone: str | None = None
    message_buffer_autoclear: bool | None = None


class LlmConfig(BaseModel):
    model: str
    model_endpoint_type: str
    model_endpoint: str | None = None
    provider_name: str | None = None
    context_window: int
    handle: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    enable_reasoner: bool | None = None
    parallel_tool_calls: bool | None = None


class Memory(BaseModel):
    blocks: list[Block]
    agent_type: str | None = None


class EnvVar(BaseModel):
    key: str
    value: str
    agent_id: str | None = None


class AgentState(BaseModel):
    id: str
    name: str
    agent_type: str
    system: str
    model: str
    llm_config: LlmConfig
    blocks: list[Block]
    memory: Memory
    tools: list[Tool]
    tags: list[str]
    sources: list[Any] = Field(default_factory=list)
    tool_rules: list[dict[str, Any]] = Field(default_factory=list)
    description: str | None = None
    metadata: dict[str, Any] | None = None
    embedding: str | None = None
    timezone: str | None = None
    message_buffer_autoclear: bool = False
    tool_exec_environment_variables: list[EnvVar] | None = None
    pending_approval: ApprovalRequestMessage | None = None
    last_run_completion: datetime | None = None
    last_run_duration_ms: int | None = None
    last_stop_reason: StopReason | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
