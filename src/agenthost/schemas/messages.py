"""Message requests (sync and async) and their input message union."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

from agenthost.schemas.common import MessageType, StopReason, WireModel
from agenthost.schemas.content import ContentPart
from agenthost.schemas.letta_messages import Approval, LettaMessage, ToolReturn


class MessageCreate(WireModel):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "assistant"]
    content: str | list[ContentPart]
    otid: str | None = Field(default=None, min_length=1, max_length=255)
    name: str | None = None
    sender_id: str | None = None
    group_id: str | None = None
    batch_item_id: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> MessageCreate:
        if isinstance(self.content, list) and not self.content:
            raise ValueError("content must not be an empty list")
        return self


class ApprovalCreate(WireModel):
    type: Literal["approval"] = "approval"
    approvals: list[Approval] | None = None
    approve: bool | None = None
    approval_request_id: str | None = None
    reason: str | None = None
    otid: str | None = Field(default=None, min_length=1, max_length=255)
    group_id: str | None = None

    @model_validator(mode="after")
    def _has_answer(self) -> ApprovalCreate:
        if not self.approvals and self.approve is None:
            raise ValueError("an approval needs 'approvals' (or the legacy 'approve')")
        return self


class MessageToolReturnCreate(WireModel):
    type: Literal["tool_return"] = "tool_return"
    tool_returns: list[ToolReturn] = Field(min_length=1)
    otid: str | None = Field(default=None, min_length=1, max_length=255)
    group_id: str | None = None


def _input_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type") or "message")
    return str(getattr(value, "type", "message"))


InputMessage = Annotated[
    Annotated[MessageCreate, Tag("message")]
    | Annotated[ApprovalCreate, Tag("approval")]
    | Annotated[MessageToolReturnCreate, Tag("tool_return")],
    Discriminator(_input_kind),
]


class ClientTool(WireModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ClientSkill(WireModel):
    name: str
    description: str
    location: str


class MessageRequestBase(WireModel):
    """The fields every message route shares (sync, async)."""

    messages: list[InputMessage] | None = None
    input: str | list[ContentPart] | None = None
    max_steps: int = Field(default=50, ge=1, le=10_000)
    use_assistant_message: bool = True
    assistant_message_tool_name: str = "send_message"
    assistant_message_tool_kwarg: str = "message"
    include_return_message_types: list[MessageType] | None = None
    enable_thinking: str | bool = "True"
    client_tools: list[ClientTool] | None = None
    client_skills: list[ClientSkill] | None = None
    override_model: str | None = None
    override_system: str | None = None
    include_compaction_messages: bool = False
    return_logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    return_token_ids: bool = False
    # Ours, on the agent routes: run in this conversation of the agent instead of its default thread
    # (the SDK's agent calls have no such argument: pass it with extra_body).
    conversation_id: str | None = None

    @model_validator(mode="after")
    def _one_input(self) -> MessageRequestBase:
        has_messages = bool(self.messages)
        has_input = self.input is not None and self.input != "" and self.input != []
        if has_messages and has_input:
            raise ValueError("give either 'messages' or 'input', not both")
        if not has_messages and not has_input:
            raise ValueError("a message request needs 'messages' (a non-empty list) or 'input'")
        names = [tool.name for tool in self.client_tools or []]
        if len(names) != len(set(names)):
            raise ValueError("client_tools names must be unique")
        if self.top_logprobs is not None and not self.return_logprobs:
            raise ValueError("top_logprobs needs return_logprobs=true")
        return self

    def input_messages(self) -> list[MessageCreate | ApprovalCreate | MessageToolReturnCreate]:
        """``input`` is shorthand for one user message."""
        if self.messages:
            return list(self.messages)
        assert self.input is not None
        return [MessageCreate(role="user", content=self.input)]


class MessageCreateAsync(MessageRequestBase):
    callback_url: str | None = Field(default=None, pattern=r"^https?://")


class MessageCreateSync(MessageRequestBase):
    streaming: bool = False
    stream_tokens: bool = False
    include_pings: bool = True
    background: bool = False


class ConversationMessageRequest(MessageCreateSync):
    """``POST /v1/conversations/{id}/messages``: streamed unless ``streaming`` is false."""

    streaming: bool = True
    # With conversation id "default": the agent whose default thread is meant.
    agent_id: str | None = None


class CancelRequest(WireModel):
    run_ids: list[str] | None = None


class StopReasonOut(BaseModel):
    message_type: Literal["stop_reason"] = "stop_reason"
    stop_reason: StopReason


class UsageOut(BaseModel):
    message_type: Literal["usage_statistics"] = "usage_statistics"
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0
    step_count: int = 0
    run_ids: list[str] | None = None


class LettaResponse(BaseModel):
    messages: list[LettaMessage]
    stop_reason: StopReasonOut
    usage: UsageOut
    # With return_logprobs: the last LLM call's logprobs (OpenAI's shape).
    logprobs: dict[str, Any] | None = None
    # With return_token_ids: every generation's token ids and logprobs, and the tool results between.
    turns: list[dict[str, Any]] | None = None
