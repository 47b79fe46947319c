"""A fake SGLang server: the fake OpenAI-compatible API plus SGLang's native ``POST /generate``.

Like a real SGLang server it serves one model, the first of ``models``: ``/generate`` requests carry
no model name, so they take their replies from that model's script and are logged under it (the body,
with the rendered prompt in ``text``). A scripted reply is written as a Qwen-style model writes it:
``<think>\\n{reasoning}\\n</think>\\n\\n`` when it has ``reasoning_content``, the text, then each call as
``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``.

Token ids are deterministic: :func:`fake_tokens` splits the text, :func:`token_id` hashes each token,
and the end-of-turn id :data:`EOS_ID` closes the output (real SGLang counts the matched stop token
in ``output_ids`` but leaves it out of ``text``). Token ``i`` has logprob ``-0.1 * (i % 5 + 1)``
(as :func:`fake_logprobs`); the end-of-turn token has :data:`EOS_LOGPROB`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.fake_llm import (
    Delay,
    Echo,
    Error,
    FakeLLM,
    Hang,
    Text,
    ToolCall,
    ToolCalls,
    fake_logprobs,
    fake_tokens,
)

__all__ = ["EOS_ID", "EOS_LOGPROB", "FakeSGLang", "render_reply", "token_id"]

EOS_ID = 151645  # <|im_end|> in Qwen's vocabulary
EOS_LOGPROB = -0.01


def token_id(token: str) -> int:
    """The fake vocabulary: a token's id is a hash of its text (below the end-of-turn id)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little") % 150_000


def render_reply(reply: Text | ToolCalls) -> str:
    """The completion text a Qwen-style model would write for ``reply``."""
    text = ""
    if reply.reasoning_content is not None:
        text = f"<think>\n{reply.reasoning_content}\n</think>\n\n"
    text += reply.content or ""
    for call in reply.calls if isinstance(reply, ToolCalls) else ():
        rendered = json.dumps({"name": call.name, "arguments": call.arguments})
        text += ("\n" if reply.content else "") + f"<tool_call>\n{rendered}\n</tool_call>"
    return text


def _last_user_turn(prompt: str) -> str:
    turns = re.findall(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", prompt, re.DOTALL)
    return turns[-1] if turns else ""


def _generation(reply: Text | ToolCalls, body: dict[str, Any]) -> dict[str, Any]:
    text = render_reply(reply)
    tokens = fake_tokens(text)
    ids = [token_id(t) for t in tokens] + [EOS_ID]
    meta: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "finish_reason": {"type": "stop", "matched": EOS_ID},
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": len(ids),
        "cached_tokens": 0,
        "e2e_latency": 0.0,
    }
    if body.get("return_logprob"):
        with_text = bool(body.get("return_text_in_logprobs"))
        top = int(body.get("top_logprobs_num") or 0)
        items = fake_logprobs(text, top)["content"]

        def triple(logprob: float, tid: int, token: str) -> list[Any]:
            return [logprob, tid, token if with_text else None]

        meta["output_token_logprobs"] = [
            triple(i["logprob"], token_id(i["token"]), i["token"]) for i in items
        ]
        meta["output_token_logprobs"].append(triple(EOS_LOGPROB, EOS_ID, ""))
        if top:
            meta["output_top_logprobs"] = [
                [triple(t["logprob"], token_id(t["token"]), t["token"]) for t in i["top_logprobs"]]
                for i in items
            ] + [[triple(EOS_LOGPROB, EOS_ID, "")]]
        else:
            meta["output_top_logprobs"] = [None] * len(ids)
    return {"text": text, "output_ids": ids, "meta_info": meta}


class FakeSGLang(FakeLLM):
    """:class:`FakeLLM` with SGLang's ``POST /generate`` at the server root (``base_url`` minus ``/v1``)."""

    def __init__(self, models: Sequence[str], **kwargs: Any) -> None:
        super().__init__(models, **kwargs)
        self.app.router.routes.append(Route("/generate", self._generate, methods=["POST"]))

    @property
    def model(self) -> str:
        """The model this server serves (``/generate`` replies come from its script)."""
        return self.models[0]

    def prompts(self) -> list[str]:
        """The ``text`` of every ``/generate`` request, in arrival order."""
        return [b["text"] for b in self.requests(self.model) if isinstance(b.get("text"), str)]

    async def _generate(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "request body is not valid JSON"}}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return JSONResponse({"error": {"message": "'text' must be a string"}}, 400)
        if not isinstance(body.get("sampling_params", {}), dict):
            return JSONResponse({"error": {"message": "'sampling_params' must be an object"}}, 400)
        reply = self._take(self.model, body)
        while isinstance(reply, Delay):
            if reply.seconds > 0 and not await self._wait(request, reply.seconds):
                return Response(status_code=499)
            reply = reply.reply
        if isinstance(reply, Hang):
            await self._wait(request, None)
            return JSONResponse({"error": {"message": "fake SGLang is shutting down"}}, 503)
        if isinstance(reply, Error):
            return JSONResponse({"error": {"message": reply.message}}, reply.status)
        if isinstance(reply, Echo):
            reply = Text("echo: " + _last_user_turn(body["text"]))
        elif isinstance(reply, ToolCall):
            reply = ToolCalls([reply])
        return JSONResponse(_generation(reply, body))
