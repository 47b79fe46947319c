"""The context window as the loop decides it: a message no compaction can fit, and a compacted context
carried into the next run. (``test_loop.py`` covers compaction mid-run, forced compaction and a system
prompt over the window; ``tests/api/test_compaction.py`` keeps the wire side: the summary message's
fields, ``include_compaction_messages``, the summarize endpoint and its validation.)
"""

from __future__ import annotations

import json

from tests.unit.loop_support import MODEL, Harness

from agenthost.agent.compaction import DEFAULT_PROMPT
from agenthost.llm.base import LLMRequest, LLMResponse
from agenthost.llm.scripted import ScriptedLLM, text

# About 700 estimated tokens.
LONG = "the quick brown fox jumps over the lazy dog " * 56


def _summarising(request: LLMRequest) -> bool:
    return request.messages[0]["content"] == DEFAULT_PROMPT


async def test_a_message_too_large_for_the_window_fails_the_run_clearly() -> None:
    h = Harness(ScriptedLLM())
    agent = h.store.add_agent(MODEL, context_window=4_000)
    run_id = await h.run(agent, input=LONG * 8)
    assert h.outcome(run_id) == ("failed", "error")
    assert "context window" in str(h.store.runs[run_id].error)
    # Nothing older to summarise, and the message alone does not fit: the LLM is never asked.
    assert h.llm.requests == []


async def test_the_next_run_starts_from_the_compacted_context() -> None:
    h = Harness(ScriptedLLM(default=text("noted")))
    # Four facts fit the window (less the answer's reserve); a fifth does not.
    agent = h.store.add_agent(MODEL, context_window=3_600)
    for i in range(4):
        await h.run(agent, input=f"fact {i}: {LONG}")
    assert not any(_summarising(r) for r in h.llm.requests)

    def summary_or_answer(request: LLMRequest) -> LLMResponse:
        return text("SUMMARY: facts 0 to 3") if _summarising(request) else text("noted")

    h.llm.script(*[summary_or_answer] * 5)
    compacted = await h.run(agent, input=f"fact 4: {LONG}")
    assert h.outcome(compacted) == ("completed", "end_turn")
    summaries = [r for r in h.llm.requests if _summarising(r)]
    assert summaries and "fact 0" in json.dumps(summaries[0].messages)
    # The newest message is kept in the context, not summarised.
    assert not any("fact 4" in json.dumps(r.messages) for r in summaries)

    h.llm.script(text("still here"))
    calls_before = len(h.llm.requests)
    later = await h.run(agent, input="and now?")
    assert h.outcome(later) == ("completed", "end_turn")
    # One call, no new summarising: the summary stands in for the evicted messages.
    (answer,) = h.llm.requests[calls_before:]
    assert "SUMMARY: facts 0 to 3" in answer.messages[1]["content"]
    assert "fact 0" not in json.dumps(answer.messages[2:])
    assert "fact 4" in json.dumps(answer.messages[2:])
