"""Message content parts (text, images, and the structured parts Letta accepts in input)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from agenthost.schemas.common import WireModel

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class TextContent(WireModel):
    type: Literal["text"] = "text"
    text: str
    signature: str | None = None


class UrlImageSource(WireModel):
    type: Literal["url"] = "url"
    url: str = Field(pattern=r"^(https?://|data:image/)")


class Base64ImageSource(WireModel):
    type: Literal["base64"] = "base64"
    data: str
    media_type: str
    detail: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Base64ImageSource:
        if self.media_type not in IMAGE_MEDIA_TYPES:
            raise ValueError(
                f"unsupported image media_type '{self.media_type}'; use one of {list(IMAGE_MEDIA_TYPES)}"
            )
        try:
            base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("image data is not valid base64") from None
        return self


class LettaImageSource(WireModel):
    type: Literal["letta"] = "letta"
    file_id: str
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None


def _source_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type") or ("base64" if "data" in value else "url"))
    return str(getattr(value, "type", "url"))


ImageSource = Annotated[
    Annotated[UrlImageSource, Tag("url")]
    | Annotated[Base64ImageSource, Tag("base64")]
    | Annotated[LettaImageSource, Tag("letta")],
    Discriminator(_source_kind),
]


class ImageContent(WireModel):
    type: Literal["image"] = "image"
    source: ImageSource


class ToolCallContent(WireModel):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    input: dict[str, Any]
    signature: str | None = None


class ToolReturnContent(WireModel):
    type: Literal["tool_return"] = "tool_return"
    tool_call_id: str
    content: str
    is_error: bool


class ReasoningContent(WireModel):
    type: Literal["reasoning"] = "reasoning"
    reasoning: str
    is_native: bool
    signature: str | None = None


class RedactedReasoningContent(WireModel):
    type: Literal["redacted_reasoning"] = "redacted_reasoning"
    data: str


class OmittedReasoningContent(WireModel):
    type: Literal["omitted_reasoning"] = "omitted_reasoning"
    signature: str | None = None


class SummaryPart(WireModel):
    index: int
    text: str


class SummarizedReasoningContent(WireModel):
    type: Literal["summarized_reasoning"] = "summarized_reasoning"
    id: str
    summary: list[SummaryPart]
    encrypted_content: str | None = None


def _content_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "text"))
    return str(getattr(value, "type", "text"))


ContentPart = Annotated[
    Annotated[TextContent, Tag("text")]
    | Annotated[ImageContent, Tag("image")]
    | Annotated[ToolCallContent, Tag("tool_call")]
    | Annotated[ToolReturnContent, Tag("tool_return")]
    | Annotated[ReasoningContent, Tag("reasoning")]
    | Annotated[RedactedReasoningContent, Tag("redacted_reasoning")]
    | Annotated[OmittedReasoningContent, Tag("omitted_reasoning")]
    | Annotated[SummarizedReasoningContent, Tag("summarized_reasoning")],
    Discriminator(_content_kind),
]

# What a tool return may carry besides a string.
ToolReturnPart = Annotated[
    Annotated[TextContent, Tag("text")] | Annotated[ImageContent, Tag("image")],
    Discriminator(_content_kind),
]
