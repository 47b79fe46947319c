"""Tests for the fake OpenAI-compatible server, driven through the real openai SDK."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall
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
from tests.fakes.fake_sglang import EOS_ID, EOS_LOGPROB, FakeSGLang, token_id

ROOT = Path(__file__).resolve().parents[2]
USER: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def client(fake: FakeLLM) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=10.0)


@pytest.fixture
def model() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_text_reply_and_default(fake: FakeLLM, client: openai.OpenAI, model: str) -> None:
    fake.script(model, Text("hello", prompt_tokens=7, completion_tokens=3))
    resp = client.chat.completions.create(model=model, messages=USER)
    assert resp.object == "chat.completion" and resp.model == model and resp.id
    assert resp.choices[0].message.content == "hello"
    assert resp.choices[0].message.tool_calls is None
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (7, 3, 10)
    again = client.chat.completions.create(model=model, messages=USER)
    assert again.choices[0].message.content == "OK"
    fake.set_default(model, Text("mine"))
    third = client.chat.completions.create(model=model, messages=USER)
    assert third.choices[0].message.content == "mine"


def test_tool_call_replies(fake: FakeLLM, client: openai.OpenAI, model: str) -> None:
    fake.script(
        model,
        ToolCall("get_weather", {"city": "Paris"}, id="call_1"),
        ToolCalls([ToolCall("a", {}), ToolCall("b", {"x": [1, 2]})], content="thinking"),
    )
    first = client.chat.completions.create(model=model, messages=USER)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "call_1" and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert first.usage is not None and first.usage.total_tokens == 15
    second = client.chat.completions.create(model=model, messages=USER)
    raw = second.choices[0].message.tool_calls or []
    calls = [c for c in raw if isinstance(c, ChatCompletionMessageFunctionToolCall)]
    assert second.choices[0].message.content == "thinking" and len(calls) == len(raw) == 2
    assert [c.function.name for c in calls] == ["a", "b"]
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id
    assert json.loads(calls[1].function.arguments) == {"x": [1, 2]}
    assert fake.pending(model) == 0


def test_per_model_isolation(fake: FakeLLM, client: openai.OpenAI) -> None:
    a, b = f"iso-a-{uuid.uuid4().hex[:6]}", f"iso-b-{uuid.uuid4().hex[:6]}"
    fake.script(a, Text("A1"), Text("A2"))
    fake.script(b, Text("B1"))
    assert client.chat.completions.create(model=b, messages=USER).choices[0].message.content == "B1"
    assert client.chat.completions.create(model=a, messages=USER).choices[0].message.content == "A1"
    assert client.chat.completions.create(model=b, messages=USER).choices[0].message.content == "OK"
    assert client.chat.completions.create(model=a, messages=USER).choices[0].message.content == "A2"
    assert len(fake.requests(a)) == 2 and len(fake.requests(b)) == 2


def test_error_reply(fake: FakeLLM, client: openai.OpenAI, model: str) -> None:
    fake.script(model, Error(429, "slow down"), Error(500))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == 429
    assert isinstance(info.value, openai.RateLimitError)
    assert "slow down" in info.value.message
    with pytest.raises(openai.InternalServerError) as info2:
        client.chat.completions.create(model=model, messages=USER)
    assert info2.value.status_code == 500


def test_streaming(fake: FakeLLM, client: openai.OpenAI, model: str) -> None:
    fake.script(model, Text("hello streaming world"), ToolCall("lookup", {"q": "cats and dogs"}, id="call_s"))
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 1 and "".join(deltas) == "hello streaming world"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15

    tool_chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True))
    calls: dict[int, dict[str, Any]] = {}
    for chunk in tool_chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
            entry["id"] = tc.id or entry["id"]
            if tc.function is not None:
                entry["name"] += tc.function.name or ""
                entry["args"] += tc.function.arguments or ""
    assert calls[0]["id"] == "call_s" and calls[0]["name"] == "lookup"
    assert json.loads(calls[0]["args"]) == {"q": "cats and dogs"}
    assert tool_chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.usage is None for c in tool_chunks)


def test_echo(fake: FakeLLM, client: openai.OpenAI, model: str) -> None:
    fake.set_default(model, Echo())
    messages: list[Any] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": "second"},
    ]
    resp = client.chat.completions.create(model=model, messages=messages)
    assert resp.choices[0].message.content == "echo: second"
    parts: list[Any] = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    multi = client.chat.completions.create(model=model, messages=[{"role": "user", "content": parts}])
    assert multi.choices[0].message.content == "echo: ab"


def test_request_log_and_wait(fake: FakeLLM, client: openai.OpenAI, model: str) -> None:
    fake.script(model, Delay(0.3, Text("late")))
    results: list[str | None] = []
    worker = threading.Thread(
        target=lambda: results.append(
            client.chat.completions.create(
                model=model,
                messages=USER,
                temperature=0.5,
            )
            .choices[0]
            .message.content
        )
    )
    worker.start()
    bodies = fake.wait_for_requests(model, 1, timeout=10)
    assert bodies[0]["model"] == model and bodies[0]["messages"] == USER and bodies[0]["temperature"] == 0.5
    worker.join(10)
    assert results == ["late"]
    assert bodies[0] in fake.all_requests()
    with pytest.raises(TimeoutError):
        fake.wait_for_requests(model, 2, timeout=0.05)


def test_delay_and_hang_end_on_client_timeout(fake: FakeLLM, model: str) -> None:
    impatient = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=0.3)
    fake.script(model, Delay(30, Text("never")), Hang(), Text("fine"))
    for _ in range(2):
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model=model, messages=USER)
    assert impatient.chat.completions.create(model=model, messages=USER).choices[0].message.content == "fine"


def test_stop_releases_hanging_request() -> None:
    fake = FakeLLM().start()
    client = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=30)
    fake.set_default(None, Hang())
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.chat.completions.create(model="m", messages=USER)
        except openai.OpenAIError as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    fake.wait_for_requests("m", 1)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 3
    worker.join(10)
    assert not worker.is_alive() and len(errors) == 1


def test_models_list(fake: FakeLLM, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "gpt-4.1"]
    with FakeLLM(models=["only"]) as other:
        listed = openai.OpenAI(base_url=other.base_url, api_key="x", max_retries=0).models.list()
        assert [(m.id, m.owned_by) for m in listed] == [("only", "fake")]


def test_standalone_mode() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_llm", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=20).strip()
        assert line.startswith("FAKE_LLM_URL=http://127.0.0.1:") and line.endswith("/v1"), line
        client = openai.OpenAI(base_url=line.split("=", 1)[1], api_key="x", max_retries=0, timeout=10)
        for name in ("anything", "bench-model"):
            resp = client.chat.completions.create(model=name, messages=USER)
            assert resp.choices[0].message.content == "OK"
    finally:
        proc.terminate()
        code = proc.wait(timeout=15)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr


def test_reasoning_content(fake: FakeLLM, client: openai.OpenAI, model: str) -> None:
    fake.script(
        model,
        Text("answer", reasoning_content="because"),
        ToolCalls([ToolCall("f", {})], reasoning_content="plan"),
        Text("streamed", reasoning_content="streamed thought"),
    )
    first = client.chat.completions.create(model=model, messages=USER).choices[0].message
    assert (first.content, first.model_extra) == ("answer", {"reasoning_content": "because"})
    second = client.chat.completions.create(model=model, messages=USER).choices[0].message
    assert second.tool_calls is not None and second.model_extra == {"reasoning_content": "plan"}
    chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True))
    thoughts = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks if c.choices]
    assert [t for t in thoughts if t] == ["streamed thought"]
    plain = client.chat.completions.create(model=model, messages=USER).choices[0].message
    assert not plain.model_extra


def test_logprobs(fake: FakeLLM, client: openai.OpenAI, model: str) -> None:
    assert fake_tokens("a bc  d ") == ["a", " bc", "  d", " "]
    fake.script(model, Text("one two three"), Text("one two three"), Text("no logprobs"), Text("x y"))
    resp = client.chat.completions.create(model=model, messages=USER, logprobs=True, top_logprobs=3)
    logprobs = resp.choices[0].logprobs
    assert logprobs is not None and logprobs.model_dump() == fake_logprobs("one two three", 3)
    content = logprobs.content or []
    assert [(c.token, c.logprob) for c in content] == [("one", -0.1), (" two", -0.2), (" three", -0.3)]
    assert [t.token for t in content[1].top_logprobs] == [" two", "alt1", "alt2"]
    assert [t.logprob for t in content[1].top_logprobs] == [-0.2, -1.2, -2.2]
    assert content[1].bytes == list(b" two")
    bare = client.chat.completions.create(model=model, messages=USER, logprobs=True).choices[0].logprobs
    assert bare is not None and all(c.top_logprobs == [] for c in bare.content or [])
    assert client.chat.completions.create(model=model, messages=USER).choices[0].logprobs is None
    chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True, logprobs=True))
    streamed = [
        t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content or []
    ]
    assert [t.token for t in streamed] == ["x", " y"]


def test_models_error_and_info(model: str) -> None:
    with FakeLLM(models=["m1", "m2"]) as other:
        client = openai.OpenAI(base_url=other.base_url, api_key="x", max_retries=0, timeout=10)
        other.model_info = {"m2": {"max_model_len": 4096}}
        listed = client.models.list().data
        assert [(m.id, (m.model_extra or {}).get("max_model_len")) for m in listed] == [
            ("m1", None),
            ("m2", 4096),
        ]
        other.models_error = Error(404, "no listing here")
        with pytest.raises(openai.NotFoundError):
            client.models.list()
        assert client.chat.completions.create(model=model, messages=USER).choices[0].message.content == "OK"


def test_fake_sglang_generate() -> None:
    with FakeSGLang(["qwen"]) as sg:
        root = sg.base_url[: -len("/v1")]
        sg.script(
            "qwen",
            ToolCalls([ToolCall("f", {"a": 1})], content="Sure.", reasoning_content="think"),
            Text("plain answer"),
            Error(400, "bad prompt"),
        )
        prompt = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
        body: dict[str, Any] = {
            "text": prompt,
            "sampling_params": {"max_new_tokens": None},
            "return_logprob": True,
        }
        first = httpx.post(f"{root}/generate", json=body, timeout=10).json()
        call = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
        text = f"<think>\nthink\n</think>\n\nSure.\n{call}"
        assert first["text"] == text
        assert first["output_ids"] == [token_id(t) for t in fake_tokens(text)] + [EOS_ID]
        meta = first["meta_info"]
        assert meta["finish_reason"] == {"type": "stop", "matched": EOS_ID}
        assert (meta["prompt_tokens"], meta["completion_tokens"]) == (10, len(first["output_ids"]))
        assert [e[1] for e in meta["output_token_logprobs"]] == first["output_ids"]
        assert all(e[2] is None for e in meta["output_token_logprobs"])

        asked = {**body, "return_text_in_logprobs": True, "top_logprobs_num": 2}
        second = httpx.post(f"{root}/generate", json=asked, timeout=10).json()
        meta = second["meta_info"]
        assert second["text"] == "plain answer"
        assert meta["output_token_logprobs"] == [
            [-0.1, token_id("plain"), "plain"],
            [-0.2, token_id(" answer"), " answer"],
            [EOS_LOGPROB, EOS_ID, ""],
        ]
        assert meta["output_top_logprobs"][0] == [
            [-0.1, token_id("plain"), "plain"],
            [-1.1, token_id("alt1"), "alt1"],
        ]

        failed = httpx.post(f"{root}/generate", json=body, timeout=10)
        assert failed.status_code == 400 and failed.json() == {"error": {"message": "bad prompt"}}
        assert httpx.post(f"{root}/generate", json={"sampling_params": {}}, timeout=10).status_code == 400

        sg.set_default("qwen", Echo())
        echoed = httpx.post(f"{root}/generate", json=body, timeout=10).json()
        assert echoed["text"] == "echo: hello" and "meta_info" in echoed
        assert sg.prompts() == [prompt] * 4
        # The chat-completions API of the same server serves the same model.
        chat = openai.OpenAI(base_url=sg.base_url, api_key="x", max_retries=0, timeout=10)
        assert (
            chat.chat.completions.create(model="qwen", messages=USER).choices[0].message.content == "echo: hi"
        )
