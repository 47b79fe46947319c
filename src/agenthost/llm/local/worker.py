"""The local model's own process: ``python -m agenthost.llm.local.worker --model PATH --n-ctx N``.

llama.cpp computes on the calling thread for as long as a generation lasts, so it runs here, never
in the server's process (where it would stall the event loop, and the GIL with it). This is the only
module that imports ``llama_cpp``.

Protocol: JSON lines. On start the worker loads the model and writes ``{"ready": true, "n_ctx",
"n_ctx_train", "load_s"}`` (or ``{"ready": false, "error"}`` and exits). Then each request line
``{"id", "op": "complete" | "count", ...}`` gets one reply line ``{"id", "ok": true, ...}`` or
``{"id", "ok": false, "kind", "error"}``, in order. ``{"op": "cancel", "id"}`` stops that request's
generation at the next token (its reply then has kind ``cancelled``). A thread reads stdin so that
a cancel arrives while the main thread generates. The worker exits when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import llama_cpp
import numpy as np
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import LlamaGrammar

# For a GGUF without a chat template: ChatML, the most common format of small instruct models.
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Low temperature: a 135M model drifts fast when sampled freely. The repeat penalty (text only: in
# JSON it would push the model off the quotes and braces it must repeat) curbs its loops.
_SAMPLING: dict[str, Any] = {"temp": 0.2, "top_k": 40, "top_p": 0.95, "min_p": 0.05}
_TEXT_REPEAT_PENALTY = 1.1


class RequestError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Inbox:
    """Requests from stdin, read on a thread of its own; cancels are noted as they arrive."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._cancelled: set[int] = set()
        self._closed = False
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._read, name="inbox", daemon=True).start()

    def cancelled(self, request_id: int) -> bool:
        with self._lock:
            return self._closed or request_id in self._cancelled

    def done(self, request_id: int) -> None:
        with self._lock:
            self._cancelled.discard(request_id)

    def _read(self) -> None:
        for line in self._stream:
            if not line.strip():
                continue
            message = json.loads(line)
            if message.get("op") == "cancel":
                with self._lock:
                    self._cancelled.add(message["id"])
            else:
                self.requests.put(message)
        with self._lock:
            self._closed = True  # the server is gone: stop whatever runs, then exit
        self.requests.put(None)


class Model:
    def __init__(self, path: str, n_ctx: int, threads: int | None) -> None:
        started = time.perf_counter()
        self.llm = llama_cpp.Llama(
            model_path=path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        self.load_s = time.perf_counter() - started
        self.n_ctx_train = self.llm._model.n_ctx_train()
        model = self.llm._model
        template = self.llm.metadata.get("tokenizer.chat_template") or _CHATML
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        self.formatter = Jinja2ChatFormatter(
            template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )

    def prompt_tokens(self, messages: list[Any]) -> list[int]:
        try:
            rendered = self.formatter(messages=messages)
        except Exception:
            # Some templates (Gemma's, for one) refuse a system role: fold it into the first user turn.
            if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
                raise
            first: Any = {"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}
            rendered = self.formatter(messages=[first, *messages[2:]])
        tokens: list[int] = self.llm.tokenize(
            rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
        )
        return tokens

    def count(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"tokens": len(self.prompt_tokens(request["messages"]))}

    def complete(self, request: dict[str, Any], cancelled: Callable[[], bool]) -> dict[str, Any]:
        if cancelled():
            raise RequestError("cancelled", "cancelled")
        llm = self.llm
        prompt = self.prompt_tokens(request["messages"])
        n_ctx = llm.n_ctx()
        if len(prompt) >= n_ctx:
            raise RequestError(
                "context_length",
                f"the prompt has {len(prompt)} tokens, over the local model's context window of {n_ctx}",
            )
        max_tokens = min(int(request["max_tokens"]), n_ctx - len(prompt))
        grammar = _grammar(request.get("schemas") or [])
        top_n = int(request.get("top_logprobs") or 0)
        recorder = LogprobRecorder(top_n) if request.get("logprobs") or request.get("token_ids") else None
        cached = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt)
        out: list[int] = []
        picked: list[tuple[float, list[tuple[int, float]]]] = []
        finish = "length"
        started = time.perf_counter()
        first_token_at = None
        for token in llm.generate(
            prompt,
            **_SAMPLING,
            repeat_penalty=1.0 if grammar is not None else _TEXT_REPEAT_PENALTY,
            grammar=grammar,
            logits_processor=llama_cpp.LogitsProcessorList([recorder]) if recorder else None,
        ):
            if first_token_at is None:
                first_token_at = time.perf_counter()
            if cancelled():
                raise RequestError("cancelled", "cancelled")
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                finish = "stop"
                break
            out.append(token)
            if recorder is not None:
                picked.append(recorder.pick(token))
            if len(out) >= max_tokens:
                break
        ended = time.perf_counter()
        result: dict[str, Any] = {
            "text": llm.detokenize(out, prev_tokens=prompt).decode("utf-8", errors="replace"),
            "finish_reason": finish,
            "prompt_tokens": len(prompt),
            "completion_tokens": len(out),
            "timings": {
                "cached_tokens": cached,
                "prompt_s": (first_token_at or ended) - started,
                "generate_s": ended - (first_token_at or ended),
            },
        }
        if request.get("token_ids"):
            result["token_ids"] = out
        if recorder is not None:
            result.update(self._logprobs(out, picked, top_n, request))
        return result

    def _logprobs(
        self,
        out: list[int],
        picked: list[tuple[float, list[tuple[int, float]]]],
        top_n: int,
        request: dict[str, Any],
    ) -> dict[str, Any]:
        def entry(token: int, logprob: float) -> dict[str, Any]:
            raw = self.llm.detokenize([token])
            return {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}

        result: dict[str, Any] = {}
        if request.get("logprobs"):
            content = [
                {**entry(token, logprob), "top_logprobs": [entry(t, lp) for t, lp in top]}
                for token, (logprob, top) in zip(out, picked, strict=True)
            ]
            result["logprobs"] = {"content": content, "refusal": None}
        if request.get("token_ids"):
            result["output_token_logprobs"] = [
                [logprob, token, [[lp, t] for t, lp in top] if top_n else None]
                for token, (logprob, top) in zip(out, picked, strict=True)
            ]
        return result


class LogprobRecorder:
    """A logits processor that changes nothing: it keeps the log-softmax of the step's logits, so the
    caller can read the sampled token's log probability (and the most likely alternatives).

    This avoids llama.cpp's ``logits_all``, which keeps logits for every position of the context
    (n_ctx x vocabulary floats: 1.6 GB for SmolLM2 at 8192 tokens)."""

    def __init__(self, top_n: int) -> None:
        self._top_n = top_n
        self._last: np.ndarray[Any, np.dtype[np.float64]] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        logits = np.asarray(scores, dtype=np.float64)
        peak = float(logits.max())
        self._last = logits - (peak + float(np.log(np.exp(logits - peak).sum())))
        return scores

    def pick(self, token: int) -> tuple[float, list[tuple[int, float]]]:
        last = self._last
        if last is None:
            return 0.0, []
        top: list[tuple[int, float]] = []
        if self._top_n:
            ids = np.argpartition(-last, self._top_n)[: self._top_n]
            top = sorted(((int(i), float(last[i])) for i in ids), key=lambda p: -p[1])
        return float(last[token]), top


def _grammar(schemas: list[dict[str, Any]]) -> LlamaGrammar | None:
    """The grammar of the first schema the converter can handle (the strict one, then a looser one)."""
    error: Exception | None = None
    for schema in schemas:
        try:
            return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:  # unsupported schema features surface as assorted exceptions
            error = exc
    if error is not None:
        raise RequestError("invalid_request", f"cannot build a grammar for the tools: {error}")
    return None


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def serve(model: Model, inbox: Inbox, reply: IO[str]) -> None:
    while (request := inbox.requests.get()) is not None:
        request_id = int(request.get("id", 0))

        def cancelled(rid: int = request_id) -> bool:
            return inbox.cancelled(rid)

        try:
            if request.get("op") == "count":
                result = model.count(request)
            elif request.get("op") == "complete":
                result = model.complete(request, cancelled)
            else:
                raise RequestError("invalid_request", f"unknown op {request.get('op')!r}")
            message = {"id": request_id, "ok": True, **result}
        except RequestError as exc:
            message = {"id": request_id, "ok": False, "kind": exc.kind, "error": str(exc)}
        except Exception as exc:  # reported to the server, which raises it as an LLMError
            message = {
                "id": request_id,
                "ok": False,
                "kind": "internal",
                "error": f"{type(exc).__name__}: {exc}",
            }
        inbox.done(request_id)
        reply.write(json.dumps(message) + "\n")
        reply.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--n-ctx", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    # Replies get a private copy of stdout; fd 1 itself points at stderr from here on, so nothing
    # llama.cpp or a library prints (from C or Python) can corrupt the protocol.
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        model = Model(args.model, args.n_ctx, args.threads)
    except Exception as exc:
        reply.write(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        reply.flush()
        return 1
    ready = {
        "ready": True,
        "n_ctx": model.llm.n_ctx(),
        "n_ctx_train": model.n_ctx_train,
        "load_s": model.load_s,
    }
    reply.write(json.dumps(ready) + "\n")
    reply.flush()
    inbox = Inbox(sys.stdin)
    inbox.start()
    serve(model, inbox, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
