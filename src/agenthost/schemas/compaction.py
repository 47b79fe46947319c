"""Forced compaction (``agents.messages.compact``): request and response."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from agenthost.schemas.common import WireModel


class CompactionSettings(WireModel):
    mode: str = "sliding_window"
    model: str | None = None
    prompt: str | None = Field(default=None, min_length=1)
    prompt_acknowledgement: bool = False
    clip_chars: int | None = Field(default=50_000, gt=0)
    sliding_window_percentage: float | None = Field(default=None, gt=0, lt=1)
    # Accepted for compatibility; the summariser uses the model's defaults.
    model_settings: dict[str, Any] | None = None

    @field_validator("mode")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in ("all", "sliding_window"):
            raise ValueError(f"compaction mode '{value}' is not supported; use 'sliding_window' or 'all'")
        return value


class CompactionRequest(WireModel):
    compaction_settings: CompactionSettings | None = None
    # The conversation routes' "default" conversation names an agent's default thread with this.
    agent_id: str | None = None


class CompactionResponse(BaseModel):
    summary: str
    num_messages_before: int
    num_messages_after: int
    run_id: str | None = None
    status: Literal["compacted", "unchanged"] = "compacted"
