"""A scriptable fake OpenAI-compatible chat-completions server, served over real HTTP on 127.0.0.1.

Tests share one server and isolate themselves by using their own ``model`` name: replies are queued
per model with :meth:`FakeLLM.script`, and every request body is logged per model.

A scripted :class:`Text` or :class:`ToolCalls` may carry ``reasoning_content`` (returned as the
message's ``reasoning_content``, as vLLM and SGLang do). A request with ``logprobs: true`` gets
:func:`fake_logprobs` of the answer's text, with ``top_logprobs`` alternatives per token.
``models_error`` makes ``GET /v1/models`` fail while chat keeps working; ``model_info`` adds keys to
its entries.

``POST /v1/embeddings`` answers with :func:`fake_embedding` vectors (a bag of hashed words, so texts
sharing words are near each other); scripting ``Error``/``Delay``/``Hang`` for an embedding model works
as for chat models, and its requests are logged under that model too.

Standalone (benchmarks): ``python -m tests.fakes.fake_llm --port 0 [--delay-ms 0]`` prints
``FAKE_LLM_URL=http://127.0.0.1:<port>/v1`` once listening and answers everything with ``OK``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import signal
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, TypeAlias

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.served import ServedApp

__all__ = [
    "Cut",
    "Delay",
    "Echo",
    "Error",
    "FakeLLM",
    "Hang",
    "Paced",
    "Reply",
    "Text",
    "ToolCall",
    "ToolCalls",
    "fake_embedding",
    "fake_logprobs",
    "fake_tokens",
    "main",
]

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4.1")
EMBEDDING_DIM = 128


@dataclass(frozen=True)
class Text:
    """Answer with assistant text."""

    content: str
    prompt_tokens: int = 10
    completion_tokens: int = 5
    reasoning_content: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """One function tool call (``id`` defaults to ``call_<hex>``); scripted alone = ``ToolCalls([call])``."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None

    def __post_init__(self) -> None:
        if self.id is None:
            object.__setattr__(self, "id", f"call_{uuid.uuid4().hex[:24]}")


@dataclass(frozen=True)
class ToolCalls:
    """Answer with one or more tool calls (finish_reason ``tool_calls``) and optional text."""

    calls: list[ToolCall]
    content: str | None = None
    prompt_tokens: int = 10
    completion_tokens: int = 5
    reasoning_content: str | None = None


@dataclass(frozen=True)
class Error:
    """Answer with HTTP ``status`` and an OpenAI-style error body."""

    status: int
    message: str = "fake error"


@dataclass(frozen=True)
class Delay:
    """Sleep ``seconds`` (cancelled if the client disconnects or the server stops), then answer ``reply``."""

    seconds: float
    reply: Reply


@dataclass(frozen=True)
class Paced:
    """Stream ``reply`` one fake token per chunk, ``interval_s`` apart (0: as fast as it can; a request
    without ``stream`` gets the whole answer after the same total time); the reasoning, if any, streams
    first the same way."""

    interval_s: float
    reply: Text | ToolCalls
    # When given, each token's send time (``time.perf_counter()``) is appended here (benchmarks).
    sent: list[float] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Cut:
    """Stream ``reply``'s first ``after`` chunks, then break the connection (a provider dying mid-answer).
    A request without ``stream`` gets a 502."""

    after: int
    reply: Text | ToolCalls


@dataclass(frozen=True)
class Hang:
    """Never answer; ends when the client disconnects or the server stops."""


@dataclass(frozen=True)
class Echo:
    """Answer with ``"echo: " + <text of the last user message>``."""


Reply: TypeAlias = Text | ToolCall | ToolCalls | Error | Delay | Paced | Cut | Hang | Echo
_OK = Text("OK")


def _error_response(status: int, message: str) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    kind = "rate_limit_error" if status == 429 else kind
    return JSONResponse({"error": {"message": message, "type": kind, "code": f"fake_{status}"}}, status)


def _usage(reply: Text | ToolCalls) -> dict[str, int]:
    total = reply.prompt_tokens + reply.completion_tokens
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": total,
    }


def fake_embedding(text: str, dims: int = EMBEDDING_DIM) -> list[float]:
    """A deterministic, unnormalised embedding: each lowercase word adds 1 to the dimension its hash picks."""
    vector = [0.0] * dims
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "little") % dims] += 1.0
    if not any(vector):
        vector[0] = 1.0
    return vector


def fake_tokens(text: str) -> list[str]:
    """The fake's tokenisation: each word with the whitespace before it (and trailing whitespace alone)."""
    return re.findall(r"\s*\S+|\s+", text)


def fake_logprobs(text: str, top: int = 0) -> dict[str, Any]:
    """OpenAI-shaped logprobs for ``text``: token ``i`` has logprob ``-0.1 * (i % 5 + 1)``, and ``top``
    alternatives (the token itself first, then ``alt1``, ``alt2``, ... one nat less likely each)."""

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    content = []
    for i, token in enumerate(fake_tokens(text)):
        logprob = round(-0.1 * (i % 5 + 1), 6)
        alternatives = [entry(token, logprob)] + [
            entry(f"alt{j}", round(logprob - j, 6)) for j in range(1, top)
        ]
        content.append({**entry(token, logprob), "top_logprobs": alternatives[:top]})
    return {"content": content, "refusal": None}


def _request_logprobs(body: dict[str, Any]) -> int | None:
    """None when the request wants no logprobs, else how many alternatives per token."""
    if not body.get("logprobs"):
        return None
    top = body.get("top_logprobs")
    return top if isinstance(top, int) else 0


def _embedding_item(index: int, vector: list[float], encoding: str | None) -> dict[str, Any]:
    if encoding == "base64":
        packed = b"".join(struct.pack("<f", x) for x in vector)
        return {"object": "embedding", "index": index, "embedding": base64.b64encode(packed).decode()}
    return {"object": "embedding", "index": index, "embedding": vector}


def _new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _completion(model: str, reply: Text | ToolCalls, top_logprobs: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning_content is not None:
        message["reasoning_content"] = reply.reasoning_content
    finish = "stop"
    if isinstance(reply, ToolCalls) and reply.calls:
        finish = "tool_calls"
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in reply.calls
        ]
    logprobs = fake_logprobs(reply.content or "", top_logprobs) if top_logprobs is not None else None
    return {
        "id": _new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}],
        "usage": _usage(reply),
    }


async def _stream(
    model: str,
    reply: Text | ToolCalls,
    include_usage: bool,
    top_logprobs: int | None = None,
    pace_s: float | None = None,
    sent: list[float] | None = None,
) -> AsyncIterator[str]:
    cid, created = _new_id(), int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    def delta(d: dict[str, Any], finish: str | None = None, logprobs: dict[str, Any] | None = None) -> str:
        return chunk([{"index": 0, "delta": d, "logprobs": logprobs, "finish_reason": finish}])

    yield delta({"role": "assistant", "content": ""})
    if pace_s is not None:
        for key, whole in (("reasoning_content", reply.reasoning_content), ("content", reply.content)):
            for token in fake_tokens(whole or ""):
                if pace_s > 0:
                    await asyncio.sleep(pace_s)
                if sent is not None:
                    sent.append(time.perf_counter())
                yield delta({key: token})
        reply = replace(reply, reasoning_content=None, content=None)
    if reply.reasoning_content:
        yield delta({"reasoning_content": reply.reasoning_content})
    text = reply.content or ""
    if top_logprobs is not None:
        # One chunk per fake token, each with its logprobs (numbered as in the whole answer).
        whole = fake_logprobs(text, top_logprobs)["content"]
        for item in whole:
            yield delta({"content": item["token"]}, logprobs={"content": [item], "refusal": None})
        text = ""
    step = max(1, -(-len(text) // 3))
    for start in range(0, len(text), step):
        yield delta({"content": text[start : start + step]})
    finish = "stop"
    if isinstance(reply, ToolCalls) and reply.calls:
        finish = "tool_calls"
        for i, call in enumerate(reply.calls):
            args = json.dumps(call.arguments)
            half = len(args) // 2
            fn = {"name": call.name, "arguments": args[:half]}
            yield delta({"tool_calls": [{"index": i, "id": call.id, "type": "function", "function": fn}]})
            yield delta({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]})
    yield delta({}, finish)
    if include_usage:
        yield chunk([], usage=_usage(reply))
    yield "data: [DONE]\n\n"


async def _cut(chunks: AsyncIterator[str], after: int) -> AsyncIterator[str]:
    sent = 0
    async for chunk in chunks:
        if sent == after:
            raise ConnectionResetError("fake LLM: the answer is cut here")
        yield chunk
        sent += 1


def _last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
            return ""
    return ""


class FakeLLM(ServedApp):
    """Fake OpenAI chat-completions server run by uvicorn in a background thread on a free port.

    Replies are scripted per request ``model``; see :meth:`script` and :meth:`set_default`.
    Pass ``record=False`` to keep no request log (long benchmarks).
    """

    label = "fake-llm"

    def __init__(
        self,
        models: Sequence[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
    ) -> None:
        self.models = list(models) if models is not None else list(DEFAULT_MODELS)
        # When set, GET /v1/models answers with this error (a server that cannot list its models).
        self.models_error: Error | None = None
        # Extra keys per model in GET /v1/models entries (vLLM's {"max_model_len": 32768}).
        self.model_info: dict[str, dict[str, Any]] = {}
        self.record = record
        self._init_serving(host, port)
        self._cond = threading.Condition()
        self._queues: dict[str, deque[Reply]] = {}
        self._defaults: dict[str | None, Reply] = {}
        self._log: list[tuple[str, dict[str, Any]]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )

    def script(self, model: str, *replies: Reply) -> None:
        """Append replies to ``model``'s FIFO queue; each request for that model consumes one."""
        with self._cond:
            queue = self._queues.setdefault(model, deque())
            queue.extend(ToolCalls([r]) if isinstance(r, ToolCall) else r for r in replies)

    def set_default(self, model: str | None, reply: Reply) -> None:
        """Reply used when ``model``'s queue is empty (``None``: for every model without its own)."""
        with self._cond:
            self._defaults[model] = ToolCalls([reply]) if isinstance(reply, ToolCall) else reply

    def pending(self, model: str) -> int:
        """Number of scripted replies not yet consumed for ``model``."""
        with self._cond:
            return len(self._queues.get(model, ()))

    def requests(self, model: str) -> list[dict[str, Any]]:
        """JSON bodies received for ``model``, in arrival order."""
        with self._cond:
            return [body for m, body in self._log if m == model]

    def all_requests(self) -> list[dict[str, Any]]:
        """All JSON bodies received, in arrival order."""
        with self._cond:
            return [body for _, body in self._log]

    def wait_for_requests(self, model: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` requests for ``model`` arrived; raise ``TimeoutError`` otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: sum(m == model for m, _ in self._log) >= n, timeout):
                got = sum(m == model for m, _ in self._log)
                raise TimeoutError(f"fake LLM: {got}/{n} requests for model {model!r} after {timeout}s")
            return [body for m, body in self._log if m == model]

    def reset(self) -> None:
        """Forget all scripts, defaults and logged requests."""
        with self._cond:
            self._queues.clear()
            self._defaults.clear()
            self._log.clear()

    def _take(self, model: str, body: dict[str, Any]) -> Reply:
        with self._cond:
            if self.record:
                self._log.append((model, body))
                self._cond.notify_all()
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
            return self._defaults.get(model) or self._defaults.get(None) or _OK

    async def _list_models(self, request: Request) -> Response:
        if self.models_error is not None:
            return _error_response(self.models_error.status, self.models_error.message)
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake", **self.model_info.get(m, {})}
            for m in self.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error_response(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error_response(400, "request body must be a JSON object")
        model = str(body.get("model", ""))
        return await self._respond(request, model, body, self._take(model, body))

    async def _embeddings(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error_response(400, "request body is not valid JSON")
        texts = body.get("input") if isinstance(body, dict) else None
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error_response(400, "input must be a string or a non-empty list of strings")
        model = str(body.get("model", ""))
        reply = self._take(model, body)
        while isinstance(reply, Delay):
            if reply.seconds > 0 and not await self._wait(request, reply.seconds):
                return Response(status_code=499)
            reply = reply.reply
        if isinstance(reply, Hang):
            await self._wait(request, None)
            return _error_response(503, "fake LLM is shutting down")
        if isinstance(reply, Error):
            return _error_response(reply.status, reply.message)
        dims = int(body.get("dimensions") or EMBEDDING_DIM)
        encoding = body.get("encoding_format")
        data = [_embedding_item(i, fake_embedding(t, dims), encoding) for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})

    async def _respond(self, request: Request, model: str, body: dict[str, Any], reply: Reply) -> Response:
        if isinstance(reply, Delay):
            if reply.seconds > 0 and not await self._wait(request, reply.seconds):
                return Response(status_code=499)
            return await self._respond(request, model, body, reply.reply)
        if isinstance(reply, Hang):
            await self._wait(request, None)
            return _error_response(503, "fake LLM is shutting down")
        if isinstance(reply, Error):
            return _error_response(reply.status, reply.message)
        if isinstance(reply, Cut):
            if not body.get("stream"):
                return _error_response(502, "fake LLM cut the answer")
            return StreamingResponse(_cut(_stream(model, reply.reply, False, pace_s=0.01), reply.after))
        pace_s: float | None = None
        sent: list[float] | None = None
        if isinstance(reply, Paced):
            pace_s, sent, reply = reply.interval_s, reply.sent, reply.reply
            if not body.get("stream"):
                chunks = len(fake_tokens((reply.reasoning_content or "") + (reply.content or "")))
                return await self._respond(request, model, body, Delay(pace_s * chunks, reply))
        if isinstance(reply, Echo):
            reply = Text("echo: " + _last_user_text(body))
        elif isinstance(reply, ToolCall):
            reply = ToolCalls([reply])
        top = _request_logprobs(body)
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            stream = _stream(model, reply, include_usage, top, pace_s, sent)
            return StreamingResponse(stream, media_type="text/event-stream")
        return JSONResponse(_completion(model, reply, top))

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake in the foreground, answering every request with ``OK``, until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat-completions server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument(
        "--hang-model", action="append", default=[], help="never answer requests for this model"
    )
    args = parser.parse_args(argv)
    fake = FakeLLM(host=args.host, port=args.port, record=False)
    if args.delay_ms > 0:
        fake.set_default(None, Delay(args.delay_ms / 1000.0, _OK))
    for model in args.hang_model:
        fake.set_default(model, Hang())
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fake.start()
    try:
        sys.stdout.write(f"FAKE_LLM_URL={fake.base_url}\n")
        sys.stdout.flush()
        while not stopping.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
