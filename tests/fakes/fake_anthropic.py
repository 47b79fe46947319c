"""A scriptable fake of Anthropic's Messages API, served over real HTTP on 127.0.0.1.

Routes: ``POST /v1/messages`` (with ``stream: true``, the same answer as server-sent events: text and
thinking a word per delta, a tool's input JSON in two halves), ``POST /v1/messages/count_tokens``,
``GET /v1/models``.
As with ``fake_llm``, tests share one server and isolate themselves by their own ``model`` name:
replies are queued per model with :meth:`FakeAnthropic.script`, and every request is logged per model.

The fake checks requests as the real API does where a client's conversion can go wrong (see
``anthropic_rules``) and answers a broken one with 400 ``invalid_request_error``, logged in
:meth:`FakeAnthropic.rejections`. Thinking blocks it sends are signed with a key of its own; only
blocks carrying the signature it issued (and redacted data it issued) are accepted back. Like the
real API it sends thinking blocks only to requests that enabled thinking: scripted ``Thinking`` and
``RedactedThinking`` blocks are dropped from answers to requests without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.anthropic_rules import Invalid, check_request
from tests.fakes.served import ServedApp

__all__ = [
    "Echo",
    "Error",
    "FakeAnthropic",
    "Hang",
    "Message",
    "RedactedThinking",
    "Reply",
    "Text",
    "Thinking",
    "ToolUse",
]

DEFAULT_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku-latest")


@dataclass(frozen=True)
class Text:
    """A text block (scripted alone: the whole answer)."""

    text: str


@dataclass(frozen=True)
class Thinking:
    """A thinking block, signed by the fake."""

    text: str


@dataclass(frozen=True)
class RedactedThinking:
    """A redacted_thinking block; ``data`` defaults to a fresh opaque string."""

    data: str = field(default_factory=lambda: f"EnCrYpTeD{secrets.token_hex(16)}")


@dataclass(frozen=True)
class ToolUse:
    """A tool_use block (``id`` defaults to ``toolu_<hex>``)."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: f"toolu_{uuid.uuid4().hex[:24]}")


Block: TypeAlias = Text | Thinking | RedactedThinking | ToolUse


@dataclass(frozen=True)
class Message:
    """A whole answer: its blocks in order; ``stop_reason`` defaults to tool_use/end_turn by the blocks."""

    blocks: Sequence[Block]
    stop_reason: str | None = None
    input_tokens: int = 10
    output_tokens: int = 5
    cache_read_input_tokens: int | None = None


@dataclass(frozen=True)
class Error:
    """Answer with HTTP ``status`` and an Anthropic error body (``retry_after`` in seconds, if given)."""

    status: int
    message: str = "fake error"
    retry_after: float | None = None


@dataclass(frozen=True)
class Hang:
    """Never answer; ends when the client disconnects or the server stops."""


@dataclass(frozen=True)
class Echo:
    """Answer with ``"echo: " + <text of the last user turn>``."""


Reply: TypeAlias = Message | Text | ToolUse | Error | Hang | Echo
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Logged:
    """One request: its route (``messages`` or ``count_tokens``), model, body, and why it was refused."""

    route: str
    model: str
    body: dict[str, Any]
    rejected: str | None


def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": f"req_{uuid.uuid4().hex}",
    }
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status, headers=headers)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def _counted(body: dict[str, Any]) -> int:
    """A deterministic stand-in for the real count: four characters of the request's JSON a token."""
    parts = {k: body.get(k) for k in ("system", "messages", "tools")}
    return len(json.dumps(parts, separators=(",", ":"))) // 4 + 1


class FakeAnthropic(ServedApp):
    """Fake Messages API run by uvicorn in a background thread on a free port."""

    label = "fake-anthropic"

    def __init__(self, models: Sequence[str] | None = None, *, host: str = "127.0.0.1") -> None:
        self.models = list(models) if models is not None else list(DEFAULT_MODELS)
        self._init_serving(host)
        self._key = secrets.token_bytes(32)
        self._issued_redacted: set[str] = set()
        self._cond = threading.Condition()
        self._queues: dict[str, deque[Reply]] = {}
        self._count_queues: dict[str, deque[int | Error]] = {}
        self._defaults: dict[str | None, Reply] = {}
        self._log: list[Logged] = []
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    # Scripting and inspection (thread-safe: tests call these while the server thread answers).

    def script(self, model: str, *replies: Reply) -> None:
        """Append replies to ``model``'s FIFO queue; each valid /v1/messages request consumes one."""
        with self._cond:
            self._queues.setdefault(model, deque()).extend(replies)

    def script_count(self, model: str, *replies: int | Error) -> None:
        """Queue count_tokens answers for ``model`` (a token count or an error); else the fake counts."""
        with self._cond:
            self._count_queues.setdefault(model, deque()).extend(replies)

    def set_default(self, model: str | None, reply: Reply) -> None:
        """Reply used when ``model``'s queue is empty (``None``: for every model without its own)."""
        with self._cond:
            self._defaults[model] = reply

    def pending(self, model: str) -> int:
        with self._cond:
            return len(self._queues.get(model, ()))

    def requests(self, model: str, route: str = "messages") -> list[dict[str, Any]]:
        """Bodies received for ``model`` on ``route`` (``messages`` or ``count_tokens``), refused ones too."""
        with self._cond:
            return [e.body for e in self._log if e.model == model and e.route == route]

    def rejections(self, model: str) -> list[str]:
        """Why requests for ``model`` were refused with 400 (empty when every request was valid)."""
        with self._cond:
            return [e.rejected for e in self._log if e.model == model and e.rejected is not None]

    def wait_for_requests(self, model: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` /v1/messages requests for ``model`` arrived."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._bodies(model)) >= n, timeout):
                raise TimeoutError(f"fake Anthropic: {len(self._bodies(model))}/{n} requests for {model!r}")
            return self._bodies(model)

    def _bodies(self, model: str) -> list[dict[str, Any]]:
        return [e.body for e in self._log if e.model == model and e.route == "messages"]

    def signature(self, thinking: str) -> str:
        """The signature this fake gives (and accepts for) a thinking block with this text."""
        return base64.b64encode(hmac.new(self._key, thinking.encode(), hashlib.sha256).digest()).decode()

    def reset(self) -> None:
        with self._cond:
            self._queues.clear()
            self._count_queues.clear()
            self._defaults.clear()
            self._log.clear()

    # Routes.

    def _signature_ok(self, thinking: str, signature: str) -> bool:
        return hmac.compare_digest(self.signature(thinking), signature)

    def _redacted_ok(self, data: str) -> bool:
        with self._cond:
            return data in self._issued_redacted

    async def _read(self, request: Request, route: str) -> tuple[str, dict[str, Any]] | Response:
        """The checked body, or the error response (the request is logged either way)."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not valid JSON")
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        rejected: str | None = None
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not (request.headers.get("x-api-key") or bearer):
            rejected = "authentication: an x-api-key or Authorization: Bearer header is required"
        elif not request.headers.get("anthropic-version"):
            rejected = "anthropic-version: header is required"
        else:
            try:
                check_request(
                    body,
                    counting=route == "count_tokens",
                    signature_ok=self._signature_ok,
                    redacted_ok=self._redacted_ok,
                )
            except Invalid as exc:
                rejected = str(exc)
        with self._cond:
            self._log.append(Logged(route, model, body if isinstance(body, dict) else {}, rejected))
            self._cond.notify_all()
        if rejected is not None:
            return _error(401 if rejected.startswith("authentication") else 400, rejected)
        return model, body

    async def _messages(self, request: Request) -> Response:
        read = await self._read(request, "messages")
        if isinstance(read, Response):
            return read
        model, body = read
        with self._cond:
            queue = self._queues.get(model)
            reply = (
                queue.popleft() if queue else self._defaults.get(model) or self._defaults.get(None) or Echo()
            )
        if isinstance(reply, Hang):
            await self._wait(request)
            return _error(503, "fake Anthropic is shutting down")
        if isinstance(reply, Error):
            return _error(reply.status, reply.message, reply.retry_after)
        if isinstance(reply, Echo):
            reply = Text("echo: " + _last_user_text(body))
        message = reply if isinstance(reply, Message) else Message([reply])
        thinking = isinstance(body.get("thinking"), dict) and body["thinking"].get("type") == "enabled"
        whole = self._message_body(model, message, thinking)
        if body.get("stream"):
            return StreamingResponse(_sse(whole), media_type="text/event-stream")
        return JSONResponse(whole)

    def _message_body(self, model: str, message: Message, thinking: bool) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for block in message.blocks:
            if isinstance(block, Text):
                content.append({"type": "text", "text": block.text, "citations": None})
            elif isinstance(block, ToolUse):
                content.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
            elif not thinking:
                continue
            elif isinstance(block, Thinking):
                content.append(
                    {"type": "thinking", "thinking": block.text, "signature": self.signature(block.text)}
                )
            else:
                with self._cond:
                    self._issued_redacted.add(block.data)
                content.append({"type": "redacted_thinking", "data": block.data})
        stop = message.stop_reason or (
            "tool_use" if any(c["type"] == "tool_use" for c in content) else "end_turn"
        )
        usage = {
            "input_tokens": message.input_tokens,
            "output_tokens": message.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": message.cache_read_input_tokens,
        }
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    async def _count_tokens(self, request: Request) -> Response:
        read = await self._read(request, "count_tokens")
        if isinstance(read, Response):
            return read
        model, body = read
        with self._cond:
            queue = self._count_queues.get(model)
            reply = queue.popleft() if queue else _counted(body)
        if isinstance(reply, Error):
            return _error(reply.status, reply.message, reply.retry_after)
        return JSONResponse({"input_tokens": reply})

    async def _list_models(self, request: Request) -> Response:
        ids = list(self.models)
        after = request.query_params.get("after_id")
        if after in ids:
            ids = ids[ids.index(after) + 1 :]
        limit = int(request.query_params.get("limit") or 20)
        page = ids[:limit]
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m.replace("-", " ").title(),
                "created_at": "2025-01-01T00:00:00Z",
                "lifecycle": "active",
            }
            for m in page
        ]
        first, last = (page[0], page[-1]) if page else (None, None)
        return JSONResponse({"data": data, "has_more": len(ids) > limit, "first_id": first, "last_id": last})

    # Serving.

    @property
    def base_url(self) -> str:
        """The API root, as ``ANTHROPIC_BASE_URL`` takes it (no ``/v1``)."""
        if not self._port:
            raise RuntimeError("FakeAnthropic is not started")
        return f"http://{self.host}:{self._port}"


async def _sse(message: dict[str, Any]) -> AsyncIterator[str]:
    """``message`` as the Messages API streams it."""

    def event(kind: str, data: dict[str, Any]) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 0}}
    yield event("message_start", {"message": start})
    for index, block in enumerate(message["content"]):
        deltas: list[dict[str, Any]] = []
        if block["type"] == "text":
            opened = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": t} for t in re.findall(r"\s*\S+|\s+", block["text"])]
        elif block["type"] == "thinking":
            opened = {**block, "thinking": "", "signature": ""}
            words = re.findall(r"\s*\S+|\s+", block["thinking"])
            deltas = [{"type": "thinking_delta", "thinking": t} for t in words]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "tool_use":
            opened = {**block, "input": {}}
            text = json.dumps(block["input"])
            half = len(text) // 2
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in (text[:half], text[half:])]
        else:
            opened = block
        yield event("content_block_start", {"index": index, "content_block": opened})
        for delta in deltas:
            yield event("content_block_delta", {"index": index, "delta": delta})
        yield event("content_block_stop", {"index": index})
    yield event(
        "message_delta",
        {
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield event("message_stop", {})
