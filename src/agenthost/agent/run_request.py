"""What a run executes: the message request as accepted, typed.

The run row keeps the request as JSON (the row is what the server acknowledged; the run executes from
it, in whichever process takes it up). It is written from the validated wire request and read back
here; unknown keys are ignored, so a row written by an older version still reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from agenthost.schemas.compaction import CompactionSettings
from agenthost.schemas.messages import ClientSkill, ClientTool, InputMessage, MessageRequestBase


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # The input messages, as the client sent them (empty for a forced compaction).
    inputs: list[InputMessage] = []
    max_steps: int = 50
    assistant_message_tool_name: str = "send_message"
    # The wire types it as a string ("True"/"false"), and older clients send booleans.
    enable_thinking: str | bool = "True"
    client_tools: list[ClientTool] | None = None
    client_skills: list[ClientSkill] | None = None
    override_model: str | None = None
    override_system: str | None = None
    return_logprobs: bool = False
    top_logprobs: int | None = None
    return_token_ids: bool = False
    # Ours: the run streams the LLM's tokens into its event log as they come (``stream_tokens``).
    token_events: bool = False
    # A forced compaction (``agents.messages.compact``): no LLM turn of its own, only the summary.
    compaction: CompactionSettings | None = None

    @classmethod
    def of(cls, body: MessageRequestBase, *, token_events: bool = False) -> RunRequest:
        """The run request of a message request (its ``input`` shorthand made a user message)."""
        return cls(
            inputs=body.input_messages(),
            max_steps=body.max_steps,
            assistant_message_tool_name=body.assistant_message_tool_name,
            enable_thinking=body.enable_thinking,
            client_tools=body.client_tools,
            client_skills=body.client_skills,
            override_model=body.override_model,
            override_system=body.override_system,
            return_logprobs=body.return_logprobs,
            top_logprobs=body.top_logprobs,
            return_token_ids=body.return_token_ids,
            token_events=token_events,
        )

    def thinking(self) -> bool:
        """``enable_thinking`` as a flag (default on)."""
        value = self.enable_thinking
        if isinstance(value, bool):
            return value
        return value.strip().lower() not in ("false", "0", "no", "off", "")

    def stored(self) -> dict[str, Any]:
        """The JSON the run row keeps."""
        # Not exclude_defaults: an input's ``type`` is a default, and it is what tells the inputs apart.
        return self.model_dump(mode="json", exclude_none=True)
