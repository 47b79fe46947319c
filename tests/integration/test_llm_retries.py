"""LLM calls are retried with backoff on 429/5xx/timeouts, then the run stops with ``llm_api_error``."""

from __future__ import annotations

from collections.abc import Callable

from tests.fakes.fake_llm import Delay, Error, FakeLLM, Text
from tests.support import ThreadServer, wait_for_run


def test_transient_errors_are_retried_until_the_answer(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="retry", model=handle)
    fake_llm.script(model, Error(429), Error(503), Text("ok"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hello")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert len(fake_llm.requests(model)) == 3
    # The failed attempts leave no trace in the run: one step, one answer.
    assert [m.message_type for m in client.runs.messages.list(run.id)] == [
        "user_message",
        "assistant_message",
    ]
    assert len(list(client.runs.steps.list(run.id))) == 1


def test_client_errors_are_not_retried(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="no-retry", model=handle)
    fake_llm.script(model, Error(400, "bad request from the model"), Text("never sent"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hello")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("failed", "llm_api_error")
    assert done.metadata is not None and "bad request from the model" in str(done.metadata["error"])
    assert len(fake_llm.requests(model)) == 1
    assert fake_llm.pending(model) == 1


def test_retries_are_bounded(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = fresh_server(llm_max_retries=2).client()
    agent = client.agents.create(name="retry-bounded", model=handle)
    fake_llm.script(model, Error(500), Error(502), Error(503), Text("too late"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hello")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("failed", "llm_api_error")
    assert done.metadata is not None and "503" in str(done.metadata["error"])
    assert len(fake_llm.requests(model)) == 3
    assert [m.message_type for m in client.runs.messages.list(run.id)] == ["user_message"]


def test_timeouts_count_as_attempts(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = fresh_server(llm_timeout_s=0.3, llm_max_retries=1).client()
    agent = client.agents.create(name="retry-timeout", model=handle)
    fake_llm.script(model, Delay(2.0, Text("slow")), Delay(2.0, Text("slow")), Text("never asked"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hello")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("failed", "llm_api_error")
    error = str((done.metadata or {}).get("error"))
    assert "Timeout" in error and "2 attempts" in error, error
    assert len(fake_llm.requests(model)) == 2
    assert fake_llm.pending(model) == 1
