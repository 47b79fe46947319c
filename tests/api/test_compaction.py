"""The context window over the wire: compaction when a prompt would overflow, forced compaction.

The overflows that stop a run (a system prompt or a message too large for the window) are loop
decisions, tested in ``tests/unit/test_loop.py`` and ``tests/unit/test_loop_compaction.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
from letta_client import Letta
from tests.fakes.fake_llm import FakeLLM, Text
from tests.support import ThreadServer, wait_for_run

from agenthost.agent.compaction import DEFAULT_PROMPT

# Each user message is about 700 estimated tokens; the default window below holds four of them.
LONG = "the quick brown fox jumps over the lazy dog " * 56


def _agent(client: Letta, handle: str, window: int = 4000, **extra: Any) -> str:
    agent = client.agents.create(
        name="compaction",
        model=handle,
        context_window_limit=window,
        include_base_tools=False,
        **extra,
    )
    return agent.id


def _say(client: Letta, agent_id: str, text: str, **extra: Any) -> Any:
    run = client.agents.messages.create_async(agent_id=agent_id, input=text, **extra)
    return wait_for_run(client, run.id)


def _summary_requests(fake_llm: FakeLLM, model: str) -> list[dict[str, Any]]:
    return [r for r in fake_llm.requests(model) if r["messages"][0]["content"] == DEFAULT_PROMPT]


def test_a_prompt_that_would_overflow_is_compacted_and_the_run_goes_on(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent_id = _agent(client, handle)
    fake_llm.set_default(model, Text("noted"))
    for i in range(4):
        assert _say(client, agent_id, f"fact {i}: {LONG}").status == "completed"
    assert _summary_requests(fake_llm, model) == []
    # Every call now answers with the summary (a long transcript may be folded in several calls).
    fake_llm.set_default(model, Text("SUMMARY: facts 0 to 3 about a fox"))
    run = _say(client, agent_id, f"fact 4: {LONG}", include_compaction_messages=True)
    assert run.status == "completed", run.metadata

    summarising = _summary_requests(fake_llm, model)
    transcripts = [r["messages"][1]["content"] for r in summarising]
    assert summarising and "fact 0" in transcripts[0]
    assert not any("fact 4" in t for t in transcripts)
    answered = fake_llm.requests(model)[-1]
    assert "SUMMARY: facts 0 to 3 about a fox" in answered["messages"][1]["content"]
    sent = " ".join(str(m.get("content")) for m in answered["messages"][2:])
    assert "fact 0" not in sent and "fact 4" in sent

    kinds = [m.message_type for m in client.runs.messages.list(run.id).items]
    assert kinds.count("summary_message") == 1 and kinds.count("event_message") == 1
    summary = next(m for m in client.runs.messages.list(run.id).items if m.message_type == "summary_message")
    assert summary.summary == "SUMMARY: facts 0 to 3 about a fox"
    assert summary.compaction_stats is not None
    assert summary.compaction_stats.trigger == "context_window_exceeded"
    assert summary.compaction_stats.messages_count_after < summary.compaction_stats.messages_count_before

    # Evicted messages stay stored and listed.
    listed = client.agents.messages.list(agent_id, limit=100, order="asc").items
    texts = [str(getattr(m, "content", "")) for m in listed if m.message_type == "user_message"]
    assert any("fact 0" in t for t in texts)

    # The next run starts from the compacted context, with no new summarising call.
    fake_llm.script(model, Text("still here"))
    assert _say(client, agent_id, "and now?").status == "completed"
    assert len(_summary_requests(fake_llm, model)) == len(summarising)
    latest = fake_llm.requests(model)[-1]["messages"]
    assert "SUMMARY" in latest[1]["content"] and "fact 0" not in str(latest[2:])


def test_compaction_messages_are_left_out_of_the_result_unless_asked_for(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent_id = _agent(client, handle)
    fake_llm.set_default(model, Text("noted"))
    for i in range(5):
        run = _say(client, agent_id, f"fact {i}: {LONG}")
        assert run.status == "completed"
    assert _summary_requests(fake_llm, model)
    kinds = {
        m.message_type
        for r in client.runs.list(agent_id=agent_id).items
        for m in client.runs.messages.list(r.id).items
    }
    assert "summary_message" not in kinds and "event_message" not in kinds
    # The agent's own history lists them.
    listed = {m.message_type for m in client.agents.messages.list(agent_id, limit=100).items}
    assert "summary_message" in listed


def test_forced_compaction_summarises_now_and_later_runs_use_the_summary(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent_id = _agent(client, handle, window=100_000)
    fake_llm.set_default(model, Text("ok"))
    for i in range(6):
        assert _say(client, agent_id, f"note {i}: the code word is heron-{i}").status == "completed"
    fake_llm.script(model, Text("SUMMARY: six code words, heron-0 to heron-5"))
    result = client.agents.messages.compact(agent_id)
    assert result.summary == "SUMMARY: six code words, heron-0 to heron-5"
    assert 0 < result.num_messages_after < result.num_messages_before

    fake_llm.script(model, Text("heron"))
    assert _say(client, agent_id, "which code words?").status == "completed"
    messages = fake_llm.requests(model)[-1]["messages"]
    assert "heron-0 to heron-5" in messages[1]["content"]
    assert "note 0" not in str(messages[2:])

    # mode "all" evicts everything in context; its summary folds in the previous one.
    fake_llm.script(model, Text("SUMMARY: everything so far"))
    result = client.agents.messages.compact(agent_id, compaction_settings={"mode": "all"})
    assert result.num_messages_after == 0
    fold = _summary_requests(fake_llm, model)[-1]["messages"][1]["content"]
    assert "heron-0 to heron-5" in fold


def test_forced_compaction_validates_its_settings(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent_id = _agent(client, handle)
    url = f"{server.base_url}/v1/agents/{agent_id}/summarize"
    bad_mode = httpx.post(url, json={"compaction_settings": {"mode": "self_compact_all"}})
    assert bad_mode.status_code == 422 and "self_compact_all" in bad_mode.text
    bad_model = httpx.post(url, json={"compaction_settings": {"model": "nowhere/model"}})
    assert bad_model.status_code == 422 and "nowhere" in bad_model.text
    missing = httpx.post(f"{server.base_url}/v1/agents/agent-00000000-0000-4000-8000-000000000000/summarize")
    assert missing.status_code == 404
