"""SGLang: its OpenAI-compatible API, and its native ``/generate`` route when token ids are wanted.

Chat completions do not return the generated token ids, which RL training needs (the exact tokens
sampled, with their logprobs). With ``return_token_ids`` the client renders the prompt itself
(``llm/chat_template.py``: ChatML with Hermes-style tools, the format of Qwen and the models SGLang's
``qwen25``/``hermes`` tool parsers serve), posts it to ``<server root>/generate`` and parses the
answer's text back into reasoning, content and tool calls. Everything else goes through chat
completions as for any OpenAI-compatible server.
"""

from __future__ import annotations

from typing import Any

from agenthost.llm.base import DeltaSink, LLMError, LLMRequest, LLMResponse, Reasoning
from agenthost.llm.chat_template import parse_output, render_chatml
from agenthost.llm.openai_compat import OpenAICompatClient


class SGLangClient(OpenAICompatClient):
    """An SGLang server (``base_url`` is its OpenAI-compatible root, ``http://host:30000/v1``)."""

    endpoint_type = "sglang"

    @property
    def server_root(self) -> str:
        """Where the native routes live: ``base_url`` without its trailing ``/v1``."""
        root = (self.endpoint or "").rstrip("/")
        return root[: -len("/v1")] if root.endswith("/v1") else root

    async def complete(self, request: LLMRequest, sink: DeltaSink | None = None) -> LLMResponse:
        if not request.return_token_ids:
            return await super().complete(request, sink)
        body = self.generate_body(request)
        url = f"{self.server_root}/generate"
        # The SDK's transport gives /generate the same auth header, timeouts and error types.
        data = await self._with_retries(lambda: self._client.post(url, body=body, cast_to=object))
        return generate_response(data, request)

    def generate_body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body of ``POST /generate`` for ``request``."""
        thinking = request.enable_thinking if self.thinking_kwarg else None
        sampling: dict[str, Any] = {
            # SGLang's own default is 128 new tokens; null lets the answer run to the context's end,
            # as chat completions do without max_tokens.
            "max_new_tokens": request.max_tokens,
        }
        body: dict[str, Any] = {
            "text": render_chatml(request.messages, request.tools, enable_thinking=thinking),
            "sampling_params": sampling,
            "return_logprob": True,
        }
        if request.return_logprobs:
            # Token texts are needed for OpenAI-shaped logprobs; without them SGLang leaves them null.
            body["return_text_in_logprobs"] = True
            if request.top_logprobs:
                body["top_logprobs_num"] = request.top_logprobs
        return body


def generate_response(data: Any, request: LLMRequest) -> LLMResponse:
    """``/generate``'s answer (``text``, ``output_ids``, ``meta_info``) as our response."""
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise LLMError(f"SGLang /generate returned an unexpected body: {str(data)[:200]}")
    meta = data.get("meta_info") or {}
    finish = meta.get("finish_reason") or {}
    kind = finish.get("type") if isinstance(finish, dict) else finish
    if kind == "abort":
        message = finish.get("message") if isinstance(finish, dict) else None
        raise LLMError(f"SGLang aborted the generation: {message or 'no reason given'}")
    parsed = parse_output(data["text"])
    token_logprobs = meta.get("output_token_logprobs")
    output_ids = data.get("output_ids")
    if not isinstance(output_ids, list) and isinstance(token_logprobs, list):
        # Older servers leave output_ids out; the ids are in the logprob entries too.
        output_ids = [entry[1] for entry in token_logprobs]
    prompt_tokens = int(meta.get("prompt_tokens") or 0)
    completion_tokens = int(meta.get("completion_tokens") or 0)
    if parsed.tool_calls:
        finish_reason = "tool_calls"
    else:
        finish_reason = "length" if kind == "length" else "stop"
    return LLMResponse(
        content=parsed.content,
        tool_calls=parsed.tool_calls,
        finish_reason=finish_reason,
        model=request.model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        cached_input_tokens=meta.get("cached_tokens"),
        reasoning_tokens=meta.get("reasoning_tokens") or None,
        reasoning=[Reasoning(text=parsed.reasoning)] if parsed.reasoning else [],
        logprobs=(
            logprobs_from_sglang(token_logprobs, meta.get("output_top_logprobs"))
            if request.return_logprobs and isinstance(token_logprobs, list)
            else None
        ),
        output_ids=[int(i) for i in output_ids] if isinstance(output_ids, list) else None,
        output_token_logprobs=[list(e) for e in token_logprobs] if isinstance(token_logprobs, list) else None,
    )


def logprobs_from_sglang(token_logprobs: list[Any], top_logprobs: list[Any] | None) -> dict[str, Any]:
    """SGLang's ``[[logprob, token_id, text], ...]`` (and per-position top lists) in OpenAI's shape."""

    def item(entry: list[Any]) -> dict[str, Any]:
        token = entry[2] if len(entry) > 2 and isinstance(entry[2], str) else ""
        logprob = entry[0] if isinstance(entry[0], int | float) else -9999.0
        return {"token": token, "logprob": float(logprob), "bytes": list(token.encode())}

    content = []
    for i, entry in enumerate(token_logprobs):
        top = top_logprobs[i] if isinstance(top_logprobs, list) and i < len(top_logprobs) else None
        content.append({**item(entry), "top_logprobs": [item(t) for t in top or ()]})
    return {"content": content, "refusal": None}
