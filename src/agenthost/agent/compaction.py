"""Keeping a run's prompt inside the model's context window.

Before each LLM call the loop counts the prompt's tokens (``LLMClient.count_tokens``: exact where the
provider can count, an estimate otherwise). When the prompt would not leave room for the answer, the
oldest messages are compacted: the agent's own model summarises them (folding in the summary of any
earlier compaction), the agent's context then starts after them, and the summary stands in for them
right after the system prompt. Evicted messages stay stored: listed by the API and found by
``conversation_search``. Each compaction writes a ``summary_message`` and an ``event_message`` to the
run, which its result shows when the request set ``include_compaction_messages``.

A sliding window keeps the newest messages that fit in a fraction of the window; the cut never falls
inside one LLM response's messages, and never before a pending approval request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agenthost.agent.context import ASSISTANT_SIDE
from agenthost.agent.messages import new_message
from agenthost.agent.persistence import ContextState, RunHandle, RunPersistence, StoredMessage, TokenStream
from agenthost.ids import new_id
from agenthost.llm.base import LLMClient, LLMRequest
from agenthost.llm.tokens import CHARS_PER_TOKEN, estimate_text
from agenthost.schemas.content import ContentPart, TextContent
from agenthost.schemas.letta_messages import (
    ApprovalRequestMessageBody,
    AssistantMessageBody,
    CompactionStats,
    EventMessageBody,
    ReasoningMessageBody,
    SummaryMessageBody,
    SystemMessageBody,
    ToolCallMessageBody,
    ToolReturnMessageBody,
    UserMessageBody,
    parse_body,
)

DEFAULT_PROMPT = (
    "You maintain the memory of an AI agent. Below is the earlier part of a conversation between the "
    "agent and its user (after the summary of anything older, if there was one). Write a concise "
    "summary that keeps every fact, decision, name, number, open question and task the agent may need "
    "later, in the order they happened. Write the summary only, in plain text, without a preamble."
)
# The share of the context window the newest messages may keep after a compaction.
KEEP_FRACTION = 0.3
SUMMARY_MAX_TOKENS = 1024
DEFAULT_CLIP_CHARS = 50_000
_RETURN_CHARS = 2_000
_PROMPT_TOKENS = 200
_MIN_CHUNK_TOKENS = 500


@dataclass(frozen=True, slots=True)
class CompactionOptions:
    mode: str = "sliding_window"  # or "all"
    keep_fraction: float = KEEP_FRACTION
    prompt: str | None = None
    clip_chars: int | None = DEFAULT_CLIP_CHARS


@dataclass(frozen=True, slots=True)
class Compaction:
    summary: str
    messages_before: int
    messages_after: int
    tokens_before: int | None
    messages: list[StoredMessage]


def reserve_tokens(context_window: int, max_tokens: int | None) -> int:
    """Tokens kept free for the answer."""
    return max_tokens or max(256, context_window // 10)


class Compactor:
    def __init__(self, store: RunPersistence) -> None:
        self._store = store

    async def compact(
        self,
        run: RunHandle,
        *,
        client: LLMClient,
        model: str,
        context_window: int,
        trigger: str,
        options: CompactionOptions,
        step_id: str | None = None,
        tokens_before: int | None = None,
        token_log: TokenStream | None = None,
    ) -> Compaction | None:
        """Summarise and evict the oldest in-context messages; ``None`` when there is nothing to evict
        (or another compaction of this agent got there first)."""
        state = await self._store.context(run.thread)
        rows = state.messages
        cut = _cut_index(state, context_window, options)
        if cut <= 0:
            return None
        summary = await self._summarise(client, model, context_window, state.summary, rows[:cut], options)
        before, after = len(rows), len(rows) - cut
        stats = CompactionStats(
            trigger=trigger,
            context_window=context_window,
            messages_count_before=before,
            messages_count_after=after,
            context_tokens_before=tokens_before,
            context_tokens_after=sum(_row_tokens(r) for r in rows[cut:]) + estimate_text(summary),
        )
        records = [
            new_message(
                run.run_id,
                run.agent_id,
                SummaryMessageBody(summary=summary, compaction_stats=stats),
                step_id=step_id,
                otid=new_id("otid"),
            ),
            new_message(
                run.run_id,
                run.agent_id,
                EventMessageBody(event_type="compaction", event_data=stats.model_dump()),
                step_id=step_id,
                otid=new_id("otid"),
            ),
        ]
        kept = rows[cut] if cut < len(rows) else None
        last_seq = rows[-1].seq
        assert last_seq is not None and (kept is None or kept.seq is not None)  # read from the store
        new_start = kept.seq if kept is not None and kept.seq is not None else last_seq + 1
        if not await self._store.apply_compaction(
            run,
            state.start_seq,
            new_start,
            summary,
            records,
            token_log=token_log,
        ):
            return None
        return Compaction(summary, before, after, tokens_before, records)

    async def _summarise(
        self,
        client: LLMClient,
        model: str,
        context_window: int,
        previous: str | None,
        evicted: Sequence[Any],
        options: CompactionOptions,
    ) -> str:
        # The transcript is folded in chunks: each request (prompt, summary so far, chunk, answer) must
        # fit the window.
        max_tokens = min(SUMMARY_MAX_TOKENS, context_window // 4)
        summary = previous or ""
        chunk: list[str] = []
        size = 0

        def budget() -> int:
            free = context_window - max_tokens - _PROMPT_TOKENS - estimate_text(summary)
            return int(max(_MIN_CHUNK_TOKENS, free) * CHARS_PER_TOKEN)

        for line in (_transcript_line(r) for r in evicted):
            if line is None:
                continue
            line = line[: budget()]
            if chunk and size + len(line) > budget():
                summary = await self._fold(client, model, summary, chunk, options, max_tokens)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            summary = await self._fold(client, model, summary, chunk, options, max_tokens)
        clip = options.clip_chars
        return summary[:clip] if clip else summary

    @staticmethod
    async def _fold(
        client: LLMClient,
        model: str,
        summary: str,
        lines: list[str],
        options: CompactionOptions,
        max_tokens: int,
    ) -> str:
        text = "\n".join(lines)
        if summary:
            text = f"Summary of what came before:\n{summary}\n\nConversation:\n{text}"
        request = LLMRequest(
            model=model,
            messages=[
                {"role": "system", "content": options.prompt or DEFAULT_PROMPT},
                {"role": "user", "content": text},
            ],
            max_tokens=max_tokens,
        )
        response = await client.complete(request)
        return (response.content or "").strip() or summary


def _cut_index(state: ContextState, context_window: int, options: CompactionOptions) -> int:
    """How many of the oldest in-context rows to evict (0: none)."""
    rows = state.messages
    if not rows:
        return 0
    limit = len(rows)
    if state.pending_approval_id is not None:
        # The pending request and what follows must stay: its answer's tool returns refer to it.
        for i, row in enumerate(rows):
            if row.id == state.pending_approval_id:
                limit = i
    # A sliding window always keeps the newest turn; "all" may evict everything.
    end = limit + 1 if options.mode == "all" else min(limit + 1, len(rows))
    boundaries = [i for i in range(1, end) if _is_boundary(rows, i)]
    if not boundaries:
        return 0
    if options.mode == "all":
        return boundaries[-1]
    tokens = [_row_tokens(r) for r in rows]
    total = sum(tokens)
    keep_budget = options.keep_fraction * min(context_window, total)
    kept = total
    evicted_upto = 0
    for i in boundaries:
        kept -= sum(tokens[evicted_upto:i])
        evicted_upto = i
        if kept <= keep_budget:
            return i
    return boundaries[-1]


def _is_boundary(rows: Sequence[Any], i: int) -> bool:
    """Cutting before row ``i`` splits no LLM response's rows."""
    if i >= len(rows):
        return True
    row, prev = rows[i], rows[i - 1]
    if row.message_type in ASSISTANT_SIDE and prev.message_type in ASSISTANT_SIDE:
        return bool(row.step_id != prev.step_id)
    return bool(row.message_type != "tool_return_message")


def _row_tokens(row: StoredMessage) -> int:
    return estimate_text(json.dumps(row.body, separators=(",", ":"))) + 4


def _transcript_line(row: StoredMessage) -> str | None:
    if row.message_type not in _TRANSCRIBED:
        return None
    body = parse_body(row.message_type, row.body)
    if isinstance(body, UserMessageBody):
        return f"user: {_text(body.content)}"
    if isinstance(body, SystemMessageBody):
        return f"system: {_text(body.content)}"
    if isinstance(body, AssistantMessageBody):
        return f"assistant: {_text(body.content)}"
    if isinstance(body, ReasoningMessageBody):
        return f"assistant (thinking): {body.reasoning}"
    if isinstance(body, ToolCallMessageBody | ApprovalRequestMessageBody):
        calls = body.tool_calls or [body.tool_call]
        return "\n".join(f"assistant calls {c.name}({c.arguments})" for c in calls)
    if isinstance(body, ToolReturnMessageBody):
        text = body.tool_return[:_RETURN_CHARS]
        return f"tool {body.name} returned ({body.status}): {text}"
    return None


# The message types a summary is written from.
_TRANSCRIBED = frozenset(
    {
        "user_message",
        "system_message",
        "assistant_message",
        "reasoning_message",
        "tool_call_message",
        "approval_request_message",
        "tool_return_message",
    }
)


def _text(content: str | list[ContentPart]) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.text if isinstance(p, TextContent) else f"[{p.type}]" for p in content)
