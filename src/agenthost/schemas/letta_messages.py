"""Letta messages: one model per ``message_type``, as the SDK parses them, and the body each one stores.

A message is a row's own columns (the envelope: id, date, otid, run and step, ``is_err``, ``seq_id``)
plus the fields of its type. The fields of its type are its *body* (``UserMessageBody``, ...): what the
``messages.body`` JSON column holds, under the same keys as the wire. The wire model of a type is its
body with the envelope added (``UserMessage(UserMessageBody, LettaMessageBase)``), so a stored body
and the message served from it cannot drift apart. ``LettaMessage`` is the union the message routes
answer with, told apart by ``message_type``.

Bodies ignore keys they do not know: rows written by older versions may carry more (the
``_client_tool_names`` bookkeeping, now a column of its own).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from agenthost.schemas.common import MessageType, WireModel
from agenthost.schemas.content import ContentPart, ToolReturnPart

# -- parts ------------------------------------------------------------------------------------


# The client's own input: part of a run's messages, not of what the agent answered (streams, logs).
INPUT_TYPES = ("user_message", "system_message")


class ToolCall(BaseModel):
    """One tool call of an LLM response."""

    name: str
    arguments: str
    tool_call_id: str


class ApprovalReturn(WireModel):
    """A human's answer to one pending tool call (in a request, and as stored in its response)."""

    type: Literal["approval"] = "approval"
    tool_call_id: str
    approve: bool
    reason: str | None = None


class ToolReturn(WireModel):
    """A tool's result: a client-side tool's (sent as input), or one of a ``tool_return_message``."""

    type: Literal["tool"] = "tool"
    tool_call_id: str
    status: Literal["success", "error"]
    tool_return: str | list[ToolReturnPart]
    stdout: list[str] | None = None
    stderr: list[str] | None = None


def _approval_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind is None and isinstance(value, dict):
        kind = "tool" if "tool_return" in value else "approval"
    return str(kind)


Approval = Annotated[
    Annotated[ApprovalReturn, Tag("approval")] | Annotated[ToolReturn, Tag("tool")],
    Discriminator(_approval_kind),
]


class CompactionStats(BaseModel):
    trigger: str
    context_window: int
    messages_count_before: int
    messages_count_after: int
    context_tokens_before: int | None = None
    context_tokens_after: int | None = None


# -- bodies: what messages.body stores --------------------------------------------------------


class MessageBody(BaseModel):
    """The stored fields of a message: those of its type, and the sender fields every type has."""

    model_config = ConfigDict(extra="ignore")

    # The message_type a body of this class is stored (and served) as.
    kind: ClassVar[MessageType]

    name: str | None = None
    sender_id: str | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON ``messages.body`` holds: the fields the builder set (the others read back as their
        defaults), so a body is stored under the keys earlier versions wrote."""
        return self.model_dump(mode="json", exclude_unset=True)


class UserMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "user_message"
    content: str | list[ContentPart]


class SystemMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "system_message"
    # A list when the client sent parts: stored as sent (the SDK types it a string).
    content: str | list[ContentPart]


class AssistantMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "assistant_message"
    content: str | list[ContentPart]


class ReasoningMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "reasoning_message"
    reasoning: str
    source: Literal["reasoner_model", "non_reasoner_model"] | None = None
    signature: str | None = None


class HiddenReasoningMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "hidden_reasoning_message"
    state: Literal["redacted", "omitted"]
    hidden_reasoning: str | None = None


class ToolCallMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "tool_call_message"
    # ``tool_call`` is the SDK's deprecated single call, kept for older clients.
    tool_call: ToolCall
    tool_calls: list[ToolCall] | None = None

    @classmethod
    def of(cls, call: ToolCall) -> ToolCallMessageBody:
        return cls(tool_call=call, tool_calls=[call])


class ToolReturnMessageBody(MessageBody):
    """A tool's result; ``name`` is the tool's. The top-level fields are the SDK's deprecated copy of
    the one ``tool_returns`` entry."""

    kind: ClassVar[MessageType] = "tool_return_message"
    tool_call_id: str
    status: Literal["success", "error"]
    tool_return: str
    stdout: list[str] | None = None
    stderr: list[str] | None = None
    tool_returns: list[ToolReturn] | None = None

    @classmethod
    def of(
        cls,
        call_id: str,
        name: str,
        status: Literal["success", "error"],
        text: str,
        stdout: list[str] | None = None,
        stderr: list[str] | None = None,
    ) -> ToolReturnMessageBody:
        result = ToolReturn(
            type="tool", tool_call_id=call_id, status=status, tool_return=text, stdout=stdout, stderr=stderr
        )
        return cls(
            name=name,
            tool_call_id=call_id,
            status=status,
            tool_return=text,
            stdout=stdout,
            stderr=stderr,
            tool_returns=[result],
        )


class ApprovalRequestMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "approval_request_message"
    tool_call: ToolCall
    tool_calls: list[ToolCall] | None = None

    @classmethod
    def of(cls, calls: list[ToolCall]) -> ApprovalRequestMessageBody:
        return cls(tool_call=calls[0], tool_calls=calls)

    def calls(self) -> list[ToolCall]:
        """Every call waiting for an answer (rows of old versions may only have ``tool_call``)."""
        return self.tool_calls or [self.tool_call]


class ApprovalResponseMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "approval_response_message"
    approvals: list[Approval] | None = None
    approve: bool | None = None
    approval_request_id: str | None = None
    reason: str | None = None


class SummaryMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "summary_message"
    summary: str
    compaction_stats: CompactionStats | None = None


class EventMessageBody(MessageBody):
    kind: ClassVar[MessageType] = "event_message"
    event_type: Literal["compaction"]
    event_data: dict[str, Any]


# -- wire messages: body + envelope -----------------------------------------------------------


class LettaMessageBase(BaseModel):
    """The envelope every message has: the row's own columns."""

    id: str
    date: datetime
    otid: str | None = None
    run_id: str | None = None
    step_id: str | None = None
    is_err: bool | None = None
    seq_id: int | None = None


class UserMessage(UserMessageBody, LettaMessageBase):
    """A message the client sent as the user."""

    message_type: Literal["user_message"] = "user_message"


class SystemMessage(SystemMessageBody, LettaMessageBase):
    """A system message the client sent."""

    message_type: Literal["system_message"] = "system_message"


class AssistantMessage(AssistantMessageBody, LettaMessageBase):
    """The agent's text answer (or a call of the legacy send_message tool, shown as one)."""

    message_type: Literal["assistant_message"] = "assistant_message"


class ReasoningMessage(ReasoningMessageBody, LettaMessageBase):
    """The model's reasoning, as it reasoned."""

    message_type: Literal["reasoning_message"] = "reasoning_message"


class HiddenReasoningMessage(HiddenReasoningMessageBody, LettaMessageBase):
    """Reasoning the provider redacted: kept (opaque) for the model's next turn."""

    message_type: Literal["hidden_reasoning_message"] = "hidden_reasoning_message"


class ToolCallMessage(ToolCallMessageBody, LettaMessageBase):
    """The tool calls of an LLM response that run on the server."""

    message_type: Literal["tool_call_message"] = "tool_call_message"


class ToolReturnMessage(ToolReturnMessageBody, LettaMessageBase):
    """A tool's result (``name`` is the tool's)."""

    message_type: Literal["tool_return_message"] = "tool_return_message"


class ApprovalRequestMessage(ApprovalRequestMessageBody, LettaMessageBase):
    """Tool calls held for the client: client-side tools, or tools that need approval."""

    message_type: Literal["approval_request_message"] = "approval_request_message"


class ApprovalResponseMessage(ApprovalResponseMessageBody, LettaMessageBase):
    """The client's answer to an approval request."""

    message_type: Literal["approval_response_message"] = "approval_response_message"


class SummaryMessage(SummaryMessageBody, LettaMessageBase):
    """The summary a compaction wrote of the messages it moved out of the context."""

    message_type: Literal["summary_message"] = "summary_message"


class EventMessage(EventMessageBody, LettaMessageBase):
    """A compaction, as an event (not part of the context)."""

    message_type: Literal["event_message"] = "event_message"


LettaMessage = Annotated[
    SystemMessage
    | UserMessage
    | ReasoningMessage
    | HiddenReasoningMessage
    | ToolCallMessage
    | ToolReturnMessage
    | AssistantMessage
    | ApprovalRequestMessage
    | ApprovalResponseMessage
    | SummaryMessage
    | EventMessage,
    Field(discriminator="message_type"),
]

BODY_CLASSES: dict[str, type[MessageBody]] = {
    cls.kind: cls
    for cls in (
        SystemMessageBody,
        UserMessageBody,
        ReasoningMessageBody,
        HiddenReasoningMessageBody,
        ToolCallMessageBody,
        ToolReturnMessageBody,
        AssistantMessageBody,
        ApprovalRequestMessageBody,
        ApprovalResponseMessageBody,
        SummaryMessageBody,
        EventMessageBody,
    )
}
# The client's own input: part of a run's messages, not of what the agent answered (results, streams, logs).
INPUT_TYPES = ("user_message", "system_message")

# Built once: a TypeAdapter compiles its validator and serializer when it is created.
LETTA_MESSAGE: TypeAdapter[LettaMessage] = TypeAdapter(LettaMessage)
LETTA_MESSAGES: TypeAdapter[list[LettaMessage]] = TypeAdapter(list[LettaMessage])


def parse_body(message_type: str, body: dict[str, Any]) -> MessageBody:
    """A stored body, read with the model of its type."""
    return BODY_CLASSES[message_type].model_validate(body)
