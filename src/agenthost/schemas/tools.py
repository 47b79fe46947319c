"""Tools on the wire: create/update bodies, ``Tool``, search results and a direct run's result."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agenthost.schemas.common import WireModel

ToolType = Literal[
    "custom",
    "letta_core",
    "letta_memory_core",
    "letta_multi_agent_core",
    "letta_sleeptime_core",
    "letta_voice_sleeptime_core",
    "letta_builtin",
    "letta_files_core",
    "external_langchain",
    "external_composio",
    "external_mcp",
]


class Requirement(BaseModel):
    name: str = Field(min_length=1)
    version: str | None = None


class ToolCreate(WireModel):
    """``POST /v1/tools/`` and ``PUT /v1/tools/`` (upsert, by the function's name)."""

    source_code: str = Field(min_length=1)
    source_type: Literal["python"] = "python"
    description: str | None = None
    json_schema: dict[str, Any] | None = None
    args_json_schema: dict[str, Any] | None = None
    tags: list[str] | None = None
    return_char_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    pip_requirements: list[Requirement] | None = None
    npm_requirements: list[Requirement] | None = None
    default_requires_approval: bool | None = None
    enable_parallel_execution: bool | None = None


class ToolUpdate(WireModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    source_code: str | None = Field(default=None, min_length=1)
    source_type: Literal["python"] | None = None
    description: str | None = None
    json_schema: dict[str, Any] | None = None
    args_json_schema: dict[str, Any] | None = None
    tags: list[str] | None = None
    return_char_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    pip_requirements: list[Requirement] | None = None
    npm_requirements: list[Requirement] | None = None
    default_requires_approval: bool | None = None
    enable_parallel_execution: bool | None = None
    # The SDK sends `metadata_` (Letta's column name leaked into the wire).
    metadata: dict[str, Any] | None = Field(default=None, alias="metadata_")


class Tool(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    name: str
    description: str | None = None
    tool_type: ToolType
    source_type: str | None = None
    source_code: str | None = None
    json_schema: dict[str, Any] | None = None
    args_json_schema: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    return_char_limit: int | None = None
    pip_requirements: list[Requirement] | None = None
    npm_requirements: list[Requirement] | None = None
    default_requires_approval: bool | None = None
    enable_parallel_execution: bool | None = None
    metadata: dict[str, Any] | None = Field(default=None, alias="metadata_")
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ToolSearch(WireModel):
    query: str | None = None
    search_mode: Literal["vector", "fts", "hybrid"] = "hybrid"
    tags: list[str] | None = None
    tool_types: list[str] | None = None
    limit: int = Field(default=50, ge=1, le=1000)


class ToolSearchResult(BaseModel):
    tool: Tool
    combined_score: float
    embedded_text: str | None = None
    fts_rank: int | None = None
    vector_rank: int | None = None


class ToolRun(WireModel):
    args: dict[str, Any] = Field(default_factory=dict)


class ToolApproval(WireModel):
    requires_approval: bool | None = None


class ToolExecutionResult(BaseModel):
    status: Literal["success", "error"]
    func_return: Any = None
    stdout: list[str] | None = None
    stderr: list[str] | None = None
    agent_state: dict[str, Any] | None = None
    sandbox_config_fingerprint: str | None = None
