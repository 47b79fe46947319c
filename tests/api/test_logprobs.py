"""Logprobs, token ids (SGLang's native route) and OpenAI reasoning through the real SDK.

``return_logprobs`` puts the last LLM call's logprobs (OpenAI's shape) on the run's result: the sync
response, GET /v1/runs/{id} metadata and the callback payload. ``return_token_ids`` on an SGLang
endpoint makes every generation a ``turns`` entry with its token ids and logprobs, with the tool
results in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from letta_client import Letta
from tests.fakes.callback_receiver import CallbackReceiver
from tests.fakes.fake_llm import FakeLLM, Text, ToolCall, ToolCalls, fake_logprobs, fake_tokens
from tests.fakes.fake_sglang import EOS_ID, EOS_LOGPROB, FakeSGLang, token_id
from tests.support import ThreadServer, api_error, wait_for_run


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as recv:
        yield recv


def _dump(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def test_sync_response_carries_the_last_calls_logprobs(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="logprobs", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "apples"}), Text("The answer is 42"))
    response = client.agents.messages.create(
        agent_id=agent.id, input="what is it?", return_logprobs=True, top_logprobs=2
    )
    assert response.logprobs is not None
    assert _dump(response.logprobs) == fake_logprobs("The answer is 42", 2)
    first = response.logprobs.content[0] if response.logprobs.content else None
    assert first is not None and (first.token, first.logprob) == ("The", -0.1)
    assert [t.token for t in first.top_logprobs] == ["The", "alt1"]
    assert [(b["logprobs"], b["top_logprobs"]) for b in fake_llm.requests(model)] == [(True, 2), (True, 2)]

    fake_llm.script(model, Text("no numbers"))
    plain = client.agents.messages.create(agent_id=agent.id, input="again")
    assert plain.logprobs is None
    assert "logprobs" not in fake_llm.requests(model)[-1]


def test_async_run_and_callback_carry_logprobs(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, receiver: CallbackReceiver
) -> None:
    client = server.client()
    agent = client.agents.create(name="logprobs-async", model=handle)
    fake_llm.script(model, Text("async words here"))
    url = receiver.url()
    run = client.agents.messages.create_async(
        agent_id=agent.id, input="hi", return_logprobs=True, top_logprobs=2, callback_url=url
    )
    done = wait_for_run(client, run.id)
    expected = fake_logprobs("async words here", 2)
    assert done.status == "completed" and done.metadata is not None
    assert done.metadata["logprobs"] == expected
    (post,) = receiver.wait_for(url)
    assert post.json()["metadata"]["result"]["logprobs"] == expected


def test_top_logprobs_is_validated(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="logprobs-bad", model=handle)
    for top in (21, -1):
        api_error(
            lambda t=top: client.agents.messages.create(  # type: ignore[misc]
                agent_id=agent.id, input="x", return_logprobs=True, top_logprobs=t
            ),
            422,
        )
    body = api_error(lambda: client.agents.messages.create(agent_id=agent.id, input="x", top_logprobs=3), 422)
    assert "return_logprobs" in str(body)


@pytest.fixture(scope="module")
def fake_sglang() -> Iterator[FakeSGLang]:
    with FakeSGLang([f"qwen-{uuid.uuid4().hex[:8]}"]) as fake:
        yield fake


def _ids(text: str) -> list[int]:
    return [token_id(t) for t in fake_tokens(text)] + [EOS_ID]


def test_token_ids_turns_on_an_sglang_endpoint(
    fresh_server: Callable[..., ThreadServer], fake_sglang: FakeSGLang
) -> None:
    srv = fresh_server(llm_endpoints={"sglang": {"base_url": fake_sglang.base_url, "kind": "sglang"}})
    client: Letta = srv.client()
    agent = client.agents.create(name="rl", model=f"sglang/{fake_sglang.model}")
    call = ToolCalls([ToolCall("conversation_search", {"query": "zebra"})], content="Searching.")
    fake_sglang.script(fake_sglang.model, call, Text("Nothing about zebras."))
    before = len(fake_sglang.prompts())
    response = client.agents.messages.create(
        agent_id=agent.id, input="any zebras?", return_token_ids=True, return_logprobs=True, top_logprobs=1
    )
    assert response.turns is not None
    turns = [t.model_dump(exclude_none=True) for t in response.turns]
    assert [t["role"] for t in turns] == ["assistant", "tool", "assistant"]
    first, tool, last = turns
    assert first["content"] == "Searching."
    called = '<tool_call>\n{"name": "conversation_search", "arguments": {"query": "zebra"}}\n</tool_call>'
    assert first["output_ids"] == _ids(f"Searching.\n{called}")
    assert len(first["output_token_logprobs"]) == len(first["output_ids"])
    assert first["output_token_logprobs"][0] == [-0.1, token_id("Searching."), "Searching."]
    assert tool["tool_name"] == "conversation_search" and tool["content"]
    assert last["content"] == "Nothing about zebras." and last["output_ids"] == _ids("Nothing about zebras.")
    assert last["output_token_logprobs"][-1] == [EOS_LOGPROB, EOS_ID, ""]
    # The logprobs are the last call's, in OpenAI's shape (the end-of-turn token included).
    assert response.logprobs is not None and response.logprobs.content is not None
    assert [c.token for c in response.logprobs.content] == [*fake_tokens("Nothing about zebras."), ""]

    # The second prompt is the rendered conversation with the call and its result in it.
    prompts = fake_sglang.prompts()[before:]
    assert len(prompts) == 2
    assert "<|im_start|>user\nany zebras?<|im_end|>" in prompts[0] and "<tools>" in prompts[0]
    assert f"Searching.\n{called}<|im_end|>" in prompts[1]
    assert f"<tool_response>\n{tool['content']}\n</tool_response>" in prompts[1]

    # The same turns on the run, and nothing of the kind without the flags.
    run_id = response.messages[-1].run_id
    assert run_id is not None
    run = client.runs.retrieve(run_id)
    assert run.metadata is not None and run.metadata["turns"] == turns
    fake_sglang.script(fake_sglang.model, Text("chat route"))
    plain = client.agents.messages.create(agent_id=agent.id, input="no ids")
    assert plain.turns is None and "messages" in fake_sglang.requests(fake_sglang.model)[-1]


def test_openai_reasoning_model(server: ThreadServer, fake_llm: FakeLLM) -> None:
    client = server.client()
    model = f"o3-mini-{uuid.uuid4().hex[:8]}"
    agent = client.agents.create(name="reasoner", model=f"openai/{model}", max_tokens=500)
    fake_llm.script(model, Text("Forty-two.", reasoning_content="Six times seven."), Text("Quick."))
    response = client.agents.messages.create(agent_id=agent.id, input="6*7?")
    kinds = [m.message_type for m in response.messages]
    assert kinds == ["reasoning_message", "assistant_message"]
    assert response.messages[0].reasoning == "Six times seven."  # type: ignore[union-attr]
    off = client.agents.messages.create(agent_id=agent.id, input="again, briefly", enable_thinking="false")
    assert [m.message_type for m in off.messages] == ["assistant_message"]
    on_body, off_body = fake_llm.requests(model)
    assert (on_body["reasoning_effort"], off_body["reasoning_effort"]) == ("medium", "low")
    assert on_body["max_completion_tokens"] == 500 and "max_tokens" not in on_body
    # The reasoning is not sent back to OpenAI, which keeps its own.
    assert all("reasoning" not in m for m in off_body["messages"])
