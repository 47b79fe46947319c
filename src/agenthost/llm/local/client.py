"""The local model as an ``LLMClient``: one worker process (``worker.py``), started on first use.

Requests go to the worker one at a time (one model instance, one lock). A caller that is cancelled
or times out does not wait for the worker: a background task asks the worker to stop the generation
(it does at the next token), reads the abandoned reply and only then lets the next request in; a
worker that does not stop within a grace period is killed, and the next request starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import logging
import sys
from pathlib import Path
from typing import Any

from agenthost.llm.base import DeltaSink, LLMClient, LLMError, LLMRequest, LLMResponse
from agenthost.llm.local import gguf
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
_CANCEL_GRACE_S = 5.0
_CLOSE_TIMEOUT_S = 10.0
# Replies with per-token logprobs are long lines; asyncio's default line limit is 64 KiB.
_LINE_LIMIT = 64 * 1024 * 1024


class LocalClient(LLMClient):
    """A GGUF model run by llama.cpp in a child process of the server; serves ``local/<model_name>``."""

    provider_name = "local"
    endpoint_type = "llamacpp"
    endpoint = None

    def __init__(
        self,
        *,
        model_path: Path,
        model_name: str,
        context_window: int,
        threads: int | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.model_path = model_path
        self.model_name = model_name
        self.configured_models = [model_name]
        self._configured_window = context_window
        self._window: int | None = None
        self._threads = threads
        self._timeout_s = timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._background: set[asyncio.Task[None]] = set()
        self.load_s: float | None = None  # of the running worker, for the benchmark
        self._in_flight: tuple[int, str] | None = None

    @property
    def worker_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def in_flight(self) -> tuple[int, str] | None:
        """(id, op) of the request the worker is busy with (also a cancelled one it is still stopping)."""
        return self._in_flight

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
        body: dict[str, Any] = {
            "op": "complete",
            "messages": chat_messages(request),
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "schemas": schemas,
            "logprobs": request.return_logprobs,
            "top_logprobs": top,
            "token_ids": request.return_token_ids,
        }
        reply = await self._call(body)
        prompt_tokens, completion_tokens = int(reply["prompt_tokens"]), int(reply["completion_tokens"])
        text = str(reply["text"])
        if request.tools:
            content, calls = parse_output(text, request.tools, required=required)
            if calls and not required and repeats_last_call(request, calls[0]):
                # The same call again would only loop: ask for an answer (the first try still counts).
                body = {**body, "schemas": [output_schema([], required=False)]}
                reply = await self._call(body)
                content, calls = parse_output(str(reply["text"]), [], required=False)
                completion_tokens += int(reply["completion_tokens"])
        else:
            content, calls = text, []
        return LLMResponse(
            content=content,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else reply["finish_reason"],
            model=self.model_name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            cached_input_tokens=reply.get("timings", {}).get("cached_tokens"),
            logprobs=reply.get("logprobs"),
            output_ids=reply.get("token_ids"),
            output_token_logprobs=reply.get("output_token_logprobs"),
        )

    async def count_tokens(self, request: LLMRequest) -> int:
        """Exact: the prompt as ``complete`` renders it (chat template, tool instructions), tokenized by
        the model's own tokenizer. A request with images, which ``complete`` refuses, is estimated."""
        self._check_model(request.model)
        try:
            reject_images(request)
        except LLMError:
            return estimate_tokens(request)
        reply = await self._call({"op": "count", "messages": chat_messages(request)})
        return int(reply["tokens"])

    async def generate_raw(self, body: dict[str, Any]) -> dict[str, Any]:
        """One worker request as is (the benchmark reads the worker's timings)."""
        return await self._call(body)

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            await _stop(proc)
        for task in list(self._background):
            task.cancel()
        self._background.clear()

    def _check_model(self, model: str) -> None:
        if model != self.model_name:
            raise LLMError(
                f"unknown local model '{model}'; this server's local model is 'local/{self.model_name}'",
                status_code=404,
            )

    async def _call(self, body: dict[str, Any]) -> dict[str, Any]:
        await self._lock.acquire()
        handed_over = False
        try:
            proc = await self._process()
            request_id = next(self._ids)
            assert proc.stdin is not None
            # Written before the first await, so a request that is cancelled was always sent, and the
            # worker always has a reply to it for ``_abandon`` to read.
            proc.stdin.write(json.dumps({"id": request_id, **body}).encode() + b"\n")
            self._in_flight = (request_id, str(body["op"]))
            try:
                reply = await asyncio.wait_for(self._exchange(proc, request_id), timeout=self._timeout_s)
            except (asyncio.CancelledError, TimeoutError) as exc:
                # The lock goes to the task that stops the worker's generation and drains its reply.
                handed_over = True
                task = asyncio.create_task(self._abandon(proc, request_id))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                if isinstance(exc, TimeoutError):
                    raise LLMError(
                        f"the local model did not answer within {self._timeout_s:.0f}s", retryable=True
                    ) from exc
                raise
        finally:
            if not handed_over:
                self._in_flight = None
                self._lock.release()
        if not reply.get("ok"):
            kind, error = reply.get("kind"), str(reply.get("error"))
            if kind == "context_length":
                raise LLMError(error, status_code=400)
            if kind == "invalid_request":
                raise LLMError(f"the local model cannot take this request: {error}", status_code=400)
            raise LLMError(f"the local model failed: {error}", status_code=500)
        return reply

    async def _exchange(self, proc: asyncio.subprocess.Process, request_id: int) -> dict[str, Any]:
        assert proc.stdin is not None
        try:
            await proc.stdin.drain()
        except OSError as exc:  # the pipe broke: the worker is gone
            raise await self._died(proc) from exc
        return await self._reply(proc, request_id)

    async def _reply(self, proc: asyncio.subprocess.Process, request_id: int) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise await self._died(proc)
            reply: dict[str, Any] = json.loads(line)
            if reply.get("id") == request_id:
                return reply

    async def _abandon(self, proc: asyncio.subprocess.Process, request_id: int) -> None:
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"op": "cancel", "id": request_id}).encode() + b"\n")
            await proc.stdin.drain()
            await asyncio.wait_for(self._reply(proc, request_id), timeout=_CANCEL_GRACE_S)
        except (OSError, TimeoutError, LLMError, ValueError):
            log.warning("the local model did not stop a cancelled generation; restarting its process")
            if self._proc is proc:
                self._proc = None
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        finally:
            self._in_flight = None
            self._lock.release()

    async def _died(self, proc: asyncio.subprocess.Process) -> LLMError:
        if self._proc is proc:
            self._proc = None
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        code = await proc.wait()
        return LLMError(
            f"the local model's process exited (status {code}); it restarts on the next request",
            retryable=True,
        )

    async def _process(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        if importlib.util.find_spec("llama_cpp") is None:
            raise LLMError("the local model needs llama-cpp-python: install agenthost[local-llm]")
        args = ["--model", str(self.model_path), "--n-ctx", str(self.context_window(self.model_name))]
        if self._threads:
            args += ["--threads", str(self._threads)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agenthost.llm.local.worker",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
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
            error = ready.get("error") or f"its process exited with status {code}"
            raise LLMError(f"the local model {self.model_path} failed to load: {error}", status_code=500)
        self._proc = proc
        self.load_s = float(ready["load_s"])
        log.info(
            "started the local model's process (pid %d, %s, context %d, loaded in %.2fs)",
            proc.pid,
            self.model_path.name,
            ready["n_ctx"],
            self.load_s,
        )
        return proc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdin is not None
    proc.stdin.close()  # the worker stops generating and exits at end of input
    try:
        await asyncio.wait_for(proc.wait(), timeout=_CLOSE_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
