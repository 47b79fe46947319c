"""The local model as an ``LLMClient``: one worker process (``worker.py``), started on first use.

The worker is llama.cpp's HTTP server on a loopback port, reached with an API key only this client
knows. It runs ``parallel`` slots with continuous batching, so several agents generate at once; the
client holds no lock of its own. Every completion streams: a text answer reaches the ``DeltaSink``
piece by piece, and a caller that is cancelled or times out closes its connection, which frees its
slot at the next token.

A worker that dies fails the requests it was serving with an error that names the signal, and the
next request starts a new one; a death by SIGILL (the CPU lacks an instruction the runtime uses) is
final, since a new process would die the same way: later requests fail at once with the same advice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import httpx

from agenthost.children import close_child
from agenthost.llm.base import Delta, DeltaSink, LLMClient, LLMError, LLMRequest, LLMResponse
from agenthost.llm.local import gguf
from agenthost.llm.local.cpu import cpu_report, missing_cpu_features
from agenthost.llm.local.prompt import (
    chat_messages,
    output_schema,
    parse_output,
    reject_images,
    repeats_last_call,
)
from agenthost.llm.tokens import estimate_tokens

log = logging.getLogger(__name__)

# A tiny model left to itself can ramble until the context is full; an agent's reply rarely needs more.
DEFAULT_MAX_TOKENS = 1024
_MAX_TOP_LOGPROBS = 20
_STDERR_TAIL = 40
# Low temperature: a 135M model drifts fast when sampled freely. The repeat penalty (text only: in
# JSON it would push the model off the quotes and braces it must repeat) curbs its loops.
_SAMPLING: dict[str, Any] = {"temperature": 0.2, "top_k": 40, "top_p": 0.95, "min_p": 0.05}
_TEXT_REPEAT_PENALTY = 1.1
ADVICE = (
    "turn the local model off (AGENTHOST_LOCAL_MODEL=off) or configure a provider "
    "(OPENAI_API_KEY, ANTHROPIC_API_KEY or AGENTHOST_LLM_ENDPOINTS)"
)

Status = Literal["unchecked", "starting", "ok", "failed"]


@dataclasses.dataclass
class LocalHealth:
    """Whether the local model works, as the startup check found (and the requests since: an answer
    makes it ``ok``, a death by SIGILL ``failed``)."""

    status: Status = "unchecked"
    error: str | None = None


@dataclasses.dataclass
class _Worker:
    proc: asyncio.subprocess.Process
    http: httpx.AsyncClient
    system_info: str
    stderr: deque[str]
    closing: bool = False
    death: str | None = None  # why it exited, once it has


class LocalClient(LLMClient):
    """A GGUF model run by llama.cpp in a child process of the server; serves ``local/<model_name>``."""

    provider_name = "local"
    endpoint_type = "llamacpp"
    endpoint = None
    streams_deltas = True

    def __init__(
        self,
        *,
        model_path: Path,
        model_name: str,
        context_window: int,
        parallel: int = 4,
        threads: int | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.model_path = model_path
        self.model_name = model_name
        self.configured_models = [model_name]
        self.parallel = parallel
        self._configured_window = context_window
        self._window: int | None = None
        self._threads = threads
        self._timeout_s = timeout_s
        self._key = secrets.token_urlsafe(24)
        self._worker: _Worker | None = None
        self._starting = asyncio.Lock()
        self._watchers: set[asyncio.Task[None]] = set()
        self._fatal: str | None = None  # why the model cannot run on this machine at all
        self.health = LocalHealth()
        self.load_s: float | None = None  # of the running worker, for the benchmark
        self.active = 0  # completions under way (the tests watch it)

    @property
    def worker_pid(self) -> int | None:
        worker = self._worker
        return worker.proc.pid if worker is not None and worker.proc.returncode is None else None

    async def list_models(self) -> list[str]:
        return [self.model_name]

    def context_window(self, model: str) -> int | None:
        """``local_context_window``, capped at the context length the model was trained with."""
        if self._window is None:
            try:
                trained = gguf.context_length(self.model_path)
            except (OSError, gguf.GGUFError) as exc:
                log.warning("cannot read the context length of %s: %s", self.model_path, exc)
                trained = None
            self._window = min(self._configured_window, trained) if trained else self._configured_window
        return self._window

    async def check(self) -> LocalHealth:
        """Start the model and generate one token: the startup check ``GET /v1/health/`` reports."""
        self.health = LocalHealth("starting")
        request = LLMRequest(self.model_name, [{"role": "user", "content": "Hi"}], max_tokens=1)
        started = time.perf_counter()
        try:
            await self.complete(request)
        except LLMError as exc:
            self.health = LocalHealth("failed", str(exc))
            log.error("the local model %s does not work: %s", self.model_path.name, exc)
        else:  # ``complete`` marked it ok
            log.info("the local model answered its check in %.2fs", time.perf_counter() - started)
        return self.health

    async def complete(self, request: LLMRequest, sink: DeltaSink | None = None) -> LLMResponse:
        self._check_model(request.model)
        reject_images(request)
        required = request.tool_choice == "required" and bool(request.tools)
        schemas = (
            [
                output_schema(request.tools, required=required),
                output_schema(request.tools, required=required, strict=False),
            ]
            if request.tools
            else []
        )
        top = min(request.top_logprobs or 0, _MAX_TOP_LOGPROBS) if request.return_logprobs else 0
        messages = chat_messages(request)
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        want_ids = request.return_token_ids
        # Only a text answer streams to the sink: under tools the model writes JSON, parsed at the end.
        text_sink = sink if not request.tools else None
        reply = await self._generate(
            messages,
            max_tokens,
            schemas,
            logprobs=request.return_logprobs or want_ids,
            top=top,
            sink=text_sink,
        )
        prompt_tokens, completion_tokens = reply.prompt_tokens, reply.completion_tokens
        if request.tools:
            content, calls = parse_output(reply.text, request.tools, required=required)
            if calls and not required and repeats_last_call(request, calls[0]):
                # The same call again would only loop: ask for an answer (the first try still counts).
                schemas = [output_schema([], required=False)]
                reply = await self._generate(messages, max_tokens, schemas, logprobs=False, top=0, sink=None)
                content, calls = parse_output(reply.text, [], required=False)
                completion_tokens += reply.completion_tokens
        else:
            content, calls = reply.text, []
        if self.health.status != "ok":
            self.health = LocalHealth("ok")
        ids = [int(entry["id"]) for entry in reply.logprobs] if reply.logprobs is not None else None
        return LLMResponse(
            content=content,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else reply.finish_reason,
            model=self.model_name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            cached_input_tokens=reply.cached_tokens,
            logprobs=_openai_logprobs(reply.logprobs, top) if request.return_logprobs else None,
            output_ids=ids if want_ids else None,
            output_token_logprobs=_token_logprobs(reply.logprobs, top) if want_ids else None,
        )

    async def count_tokens(self, request: LLMRequest) -> int:
        """Exact: the prompt as ``complete`` renders it (chat template, tool instructions), tokenized by
        the model's own tokenizer. A request with images, which ``complete`` refuses, is estimated."""
        self._check_model(request.model)
        try:
            reject_images(request)
        except LLMError:
            return estimate_tokens(request)
        async with self._exchange() as http:
            rendered = await _post(http, "/apply-template", {"messages": chat_messages(request)})
            body = {"content": rendered["prompt"], "add_special": True, "parse_special": True}
            tokens = await _post(http, "/tokenize", body)
        return len(tokens["tokens"])

    async def generate_raw(self, body: dict[str, Any]) -> dict[str, Any]:
        """One chat completion as llama.cpp answers it, ``timings`` included (for the benchmark)."""
        async with self._exchange() as http:
            return await _post(http, "/v1/chat/completions", {**body, "stream": False})

    async def slots_busy(self) -> int:
        """How many of the worker's slots are generating now (0 without a worker)."""
        if self._worker is None:
            return 0
        async with self._exchange() as http:
            response = await http.get("/slots")
            response.raise_for_status()
            return sum(1 for slot in response.json() if slot.get("is_processing"))

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await self._stop(worker)
        for task in list(self._watchers):
            task.cancel()
        self._watchers.clear()

    def _check_model(self, model: str) -> None:
        if model != self.model_name:
            raise LLMError(
                f"unknown local model '{model}'; this server's local model is 'local/{self.model_name}'",
                status_code=404,
            )

    async def _generate(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        schemas: list[dict[str, Any]],
        *,
        logprobs: bool,
        top: int,
        sink: DeltaSink | None,
    ) -> _Reply:
        attempts: list[dict[str, Any] | None] = [*schemas] or [None]
        for i, schema in enumerate(attempts):
            body = completion_body(messages, max_tokens, schema, logprobs=logprobs, top=top)
            try:
                return await self._stream(body, sink)
            except _GrammarError as exc:
                if i + 1 == len(attempts):  # the looser schema failed too
                    raise LLMError(
                        f"the local model cannot take this request: cannot build a grammar for the "
                        f"tools: {exc}",
                        status_code=400,
                    ) from exc
        raise AssertionError("unreachable")

    async def _stream(self, body: dict[str, Any], sink: DeltaSink | None) -> _Reply:
        reply = _Reply()
        self.active += 1
        try:
            async with self._exchange() as http, asyncio.timeout(self._timeout_s):
                streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
                async with http.stream("POST", "/v1/chat/completions", json=streamed) as response:
                    if response.status_code != 200:
                        raise _request_error(response.status_code, await response.aread())
                    async for chunk in _events(response):
                        reply.add(chunk, sink)
                if reply.finish_reason is None:  # the stream stopped short of its end
                    raise httpx.RemoteProtocolError("the answer ended before its finish reason")
        except TimeoutError as exc:
            raise LLMError(
                f"the local model did not answer within {self._timeout_s:.0f}s", retryable=True
            ) from exc
        finally:
            self.active -= 1
        return reply

    @contextlib.asynccontextmanager
    async def _exchange(self) -> AsyncIterator[httpx.AsyncClient]:
        """The worker's HTTP client for one exchange; a broken connection becomes the worker's death."""
        worker = await self._running()
        try:
            yield worker.http
        except httpx.TransportError as exc:
            raise await self._lost(worker, exc) from exc

    async def _running(self) -> _Worker:
        if self._fatal is not None:
            raise LLMError(self._fatal, status_code=500)
        worker = self._worker
        if worker is not None and worker.proc.returncode is None:
            return worker
        async with self._starting:
            if self._worker is not None and self._worker.proc.returncode is None:
                return self._worker
            if self._fatal is not None:
                raise LLMError(self._fatal, status_code=500)
            self._worker = await self._start()
            return self._worker

    async def _start(self) -> _Worker:
        missing = missing_cpu_features()
        if missing:
            self._fatal = (
                f"the local model cannot run on this CPU: its runtime (llama.cpp from the xllamacpp "
                f"wheel) needs {', '.join(missing)}, which this CPU lacks; {ADVICE}"
            )
            log.error("%s (%s)", self._fatal, cpu_report())
            raise LLMError(self._fatal, status_code=500)
        slot_ctx = self.context_window(self.model_name) or self._configured_window
        args = ["--model", str(self.model_path), "--slot-ctx", str(slot_ctx), "--slots", str(self.parallel)]
        if self._threads:
            args += ["--threads", str(self._threads)]
        if log.isEnabledFor(logging.DEBUG):
            args += ["--verbosity", "3"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agenthost.llm.local.worker",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None
        proc.stdin.write(f"{self._key}\n".encode())
        stderr: deque[str] = deque(maxlen=_STDERR_TAIL)
        drained = self._watch(_drain(proc, stderr))
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=self._timeout_s)
        except BaseException:  # cancelled or timed out while loading: leave no half-started process
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        ready: dict[str, Any] = json.loads(line) if line else {}
        if not ready.get("ready"):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
            with contextlib.suppress(TimeoutError):  # the last lines it wrote, for the error
                await asyncio.wait_for(asyncio.shield(drained), timeout=2.0)
            if code < 0 and "error" not in ready:  # died by a signal while loading
                raise LLMError(self._describe_exit(code, list(stderr), ""), status_code=500)
            errors = [line for line in stderr if " E " in line or "error" in line.lower()]
            detail = f" ({'; '.join(errors)[-500:]})" if errors else ""
            error = ready.get("error") or _exit_text(code)
            raise LLMError(
                f"the local model {self.model_path} failed to load: {error}{detail}", status_code=500
            )
        http = httpx.AsyncClient(
            base_url=ready["address"],
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=httpx.Timeout(None, connect=10.0),  # a whole answer is timed by ``_stream``
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        worker = _Worker(proc, http, str(ready["system_info"]), stderr)
        self.load_s = float(ready["load_s"])
        self._watch(self._await_exit(worker))
        log.info(
            "started the local model's process (pid %d, %s, %d slots of %d tokens, loaded in %.2fs)",
            proc.pid,
            self.model_path.name,
            self.parallel,
            slot_ctx,
            self.load_s,
        )
        return worker

    def _watch(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return task

    async def _await_exit(self, worker: _Worker) -> None:
        code = await worker.proc.wait()
        if self._worker is worker:
            self._worker = None
        await worker.http.aclose()
        if not worker.closing:
            self._death(worker, code)

    def _death(self, worker: _Worker, code: int) -> str:
        """What a worker's exit means for the requests it served; logged once per worker."""
        if worker.death is None:
            worker.death = self._describe_exit(code, list(worker.stderr), worker.system_info)
        return worker.death

    def _describe_exit(self, code: int, stderr: list[str], system_info: str) -> str:
        last = " | ".join(stderr[-5:]) or "none"
        if code >= 0:
            message = (
                f"the local model's process exited ({_exit_text(code)}); it restarts on the next request"
            )
            log.warning("%s. Last output: %s", message, last)
            return message
        name = _signal_name(-code)
        if -code == signal.SIGILL:
            message = (
                f"the local model's process died of {name} (illegal instruction): its runtime used a CPU "
                f"instruction this machine does not have; {ADVICE}"
            )
            first, self._fatal = self._fatal is None, message
            self.health = LocalHealth("failed", message)
            if first:  # later requests fail at once with the same message, without a log line each
                log.error(
                    "%s. CPU: %s. Runtime: %s. Last output: %s", message, cpu_report(), system_info, last
                )
            return message
        message = (
            f"the local model's process died of {name}; it restarts on the next request (if it keeps "
            f"dying, {ADVICE})"
        )
        log.error("%s. CPU: %s. Last output: %s", message, cpu_report(), last)
        return message

    async def _lost(self, worker: _Worker, exc: Exception) -> LLMError:
        """The error for a request whose connection to the worker broke."""
        try:
            code = await asyncio.wait_for(worker.proc.wait(), timeout=2.0)
        except TimeoutError:  # alive: the connection itself failed
            return LLMError(f"the connection to the local model failed: {exc!r}", retryable=True)
        message = self._death(worker, code)
        return LLMError(message, status_code=500, retryable=self._fatal is None)

    async def _stop(self, worker: _Worker) -> None:
        worker.closing = True
        await worker.http.aclose()
        await close_child(worker.proc)


@dataclasses.dataclass
class _Reply:
    """A streamed chat completion, put together chunk by chunk."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    logprobs: list[dict[str, Any]] | None = None

    def add(self, chunk: dict[str, Any], sink: DeltaSink | None) -> None:
        for choice in chunk.get("choices") or ():
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                self.text += piece
                if sink is not None:
                    sink.delta(Delta("content", piece))
            content = (choice.get("logprobs") or {}).get("content")
            if content:
                self.logprobs = [*(self.logprobs or []), *content]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if usage := chunk.get("usage"):
            self.prompt_tokens = int(usage.get("prompt_tokens", 0))
            self.completion_tokens = int(usage.get("completion_tokens", 0))
        if timings := chunk.get("timings"):
            self.cached_tokens = int(timings.get("cache_n", 0))


def completion_body(
    messages: list[dict[str, str]],
    max_tokens: int,
    schema: dict[str, Any] | None,
    *,
    logprobs: bool = False,
    top: int = 0,
) -> dict[str, Any]:
    """The body of a chat completion request to the worker: our sampling, and the output held to
    ``schema`` when there is one."""
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": max_tokens,
        **_SAMPLING,
        "repeat_penalty": _TEXT_REPEAT_PENALTY if schema is None else 1.0,
    }
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
    if logprobs:
        # At least one alternative: with none, llama.cpp streams no log probabilities at all.
        body |= {"logprobs": True, "top_logprobs": max(top, 1)}
    return body


class _GrammarError(Exception):
    """The worker could not turn a JSON schema into a grammar."""


async def _events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        if data.strip() == "[DONE]":
            return
        event: dict[str, Any] = json.loads(data)
        if "error" in event:  # an error after the stream began
            raise LLMError(f"the local model failed: {event['error'].get('message', event['error'])}")
        yield event


def _request_error(status: int, raw: bytes) -> Exception:
    try:
        error = json.loads(raw).get("error", {})
    except ValueError:
        error = {"message": raw.decode(errors="replace")}
    kind, message = error.get("type"), str(error.get("message") or error)
    if kind == "exceed_context_size_error":
        return LLMError(
            f"the prompt has {error.get('n_prompt_tokens')} tokens, over the local model's context window "
            f"of {error.get('n_ctx')}",
            status_code=400,
        )
    if status == 400 and ("grammar" in message.lower() or "schema" in message.lower()):
        return _GrammarError(message)
    if status == 400:
        return LLMError(f"the local model cannot take this request: {message}", status_code=400)
    return LLMError(f"the local model failed (HTTP {status}): {message}", status_code=status, retryable=True)


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    if response.status_code != 200:
        error = _request_error(response.status_code, response.content)
        raise error if isinstance(error, LLMError) else LLMError(str(error), status_code=400)
    result: dict[str, Any] = response.json()
    return result


def _openai_logprobs(entries: list[dict[str, Any]] | None, top: int) -> dict[str, Any] | None:
    """OpenAI's shape: ``{"content": [{"token", "logprob", "bytes", "top_logprobs"}], "refusal"}``."""
    if entries is None:
        return None

    def plain(entry: dict[str, Any]) -> dict[str, Any]:
        return {"token": entry["token"], "logprob": entry["logprob"], "bytes": entry.get("bytes")}

    content = [
        {**plain(entry), "top_logprobs": [plain(t) for t in (entry.get("top_logprobs") or [])[:top]]}
        for entry in entries
    ]
    return {"content": content, "refusal": None}


def _token_logprobs(entries: list[dict[str, Any]] | None, top: int) -> list[list[Any]] | None:
    """``[[logprob, token_id, [[logprob, token_id], ...] | None], ...]``, one row per generated token."""
    if entries is None:
        return None
    return [
        [
            entry["logprob"],
            entry["id"],
            [[t["logprob"], t["id"]] for t in entry.get("top_logprobs") or ()] if top else None,
        ]
        for entry in entries
    ]


async def _drain(proc: asyncio.subprocess.Process, tail: deque[str]) -> None:
    """Keep the last lines the worker wrote to stderr (for a crash report); log them at debug level."""
    assert proc.stderr is not None
    async for raw in proc.stderr:
        line = raw.decode(errors="replace").rstrip()
        tail.append(line)
        log.debug("local model: %s", line)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _exit_text(code: int) -> str:
    return f"killed by {_signal_name(-code)}" if code < 0 else f"exit status {code}"
