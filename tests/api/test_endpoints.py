"""Named OpenAI-compatible endpoints (AGENTHOST_LLM_ENDPOINTS): listing, handles, and runs reaching them.

Fake servers stand in for vLLM (lists max_model_len), Ollama (a configured context window), an
OpenRouter-style router (model names with slashes, an API key), an SGLang server, one whose /models
fails and one that is not there at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from letta_client import Letta, UnprocessableEntityError
from tests.fakes.fake_llm import Error, FakeLLM, Text
from tests.fakes.fake_sglang import FakeSGLang
from tests.support import ThreadServer, free_port, wait_for_run


@dataclass
class Fleet:
    vllm: FakeLLM
    ollama: FakeLLM
    router: FakeLLM
    sglang: FakeSGLang
    flaky: FakeLLM
    dead_url: str

    def endpoints(self) -> dict[str, dict[str, object]]:
        return {
            "vllm": {"base_url": self.vllm.base_url},
            "ollama": {"base_url": self.ollama.base_url, "context_window": 8192},
            "router": {"base_url": self.router.base_url, "api_key": "router-key"},
            "sglang": {"base_url": self.sglang.base_url, "kind": "sglang"},
            "flaky": {"base_url": self.flaky.base_url, "models": ["flaky-a", "flaky-b"]},
            "dead": {"base_url": self.dead_url, "models": ["ghost"], "context_window": 4096},
        }


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    vllm = FakeLLM([_name("Qwen/Qwen3-8B")]).start()
    vllm.model_info = {vllm.models[0]: {"max_model_len": 32768}}
    ollama = FakeLLM([_name("llama3.2:1b")]).start()
    router = FakeLLM([_name("meta-llama/llama-3.1-8b-instruct"), _name("openai/o3-mini")]).start()
    sglang = FakeSGLang([_name("qwen2.5-7b")]).start()
    flaky = FakeLLM(["flaky-a"]).start()
    flaky.models_error = Error(500, "listing is down")
    fakes = [vllm, ollama, router, sglang, flaky]
    try:
        yield Fleet(vllm, ollama, router, sglang, flaky, f"http://127.0.0.1:{free_port()}/v1")
    finally:
        for fake in fakes:
            fake.stop()


@pytest.fixture
def srv(fresh_server: Callable[..., ThreadServer], fleet: Fleet) -> ThreadServer:
    return fresh_server(llm_endpoints=fleet.endpoints())


def test_models_lists_every_provider(srv: ThreadServer, fleet: Fleet, fake_llm: FakeLLM) -> None:
    client = srv.client()
    by_handle = {m.handle: m for m in client.models.list()}
    default = srv.settings.default_context_window
    expected = {
        **{f"openai/{m}": ("openai", "openai", fake_llm.base_url, default) for m in fake_llm.models},
        f"vllm/{fleet.vllm.models[0]}": ("vllm", "openai", fleet.vllm.base_url, 32768),
        f"ollama/{fleet.ollama.models[0]}": ("ollama", "openai", fleet.ollama.base_url, 8192),
        **{f"router/{m}": ("router", "openai", fleet.router.base_url, default) for m in fleet.router.models},
        f"sglang/{fleet.sglang.model}": ("sglang", "sglang", fleet.sglang.base_url, default),
        # Listings that fail fall back to the configured models.
        "flaky/flaky-a": ("flaky", "openai", fleet.flaky.base_url, default),
        "flaky/flaky-b": ("flaky", "openai", fleet.flaky.base_url, default),
        "dead/ghost": ("dead", "openai", fleet.dead_url, 4096),
    }
    assert set(by_handle) == set(expected)
    for handle, (provider, kind, endpoint, window) in expected.items():
        entry = by_handle[handle]
        assert entry.name == entry.model == handle.split("/", 1)[1]
        assert (entry.provider_name, entry.provider_type, entry.api_model_endpoint) == (
            provider,
            kind,
            endpoint,
        )
        assert (entry.context_window, entry.max_context_window) == (window, window), handle

    assert {m.handle for m in client.models.list(provider_name="router")} == {
        f"router/{m}" for m in fleet.router.models
    }
    assert {m.handle for m in client.models.list(provider_type="sglang")} == {f"sglang/{fleet.sglang.model}"}


def _ask(client: Letta, handle: str, text: str) -> str:
    agent = client.agents.create(name="endpoint", model=handle)
    assert agent.model == handle
    response = client.agents.messages.create(agent_id=agent.id, input=text)
    replies = [m.content for m in response.messages if m.message_type == "assistant_message"]
    assert len(replies) == 1
    return str(replies[0])


def test_runs_reach_the_right_server(srv: ThreadServer, fleet: Fleet, fake_llm: FakeLLM) -> None:
    client = srv.client()
    cases: list[tuple[str, FakeLLM, str]] = [
        ("vllm", fleet.vllm, fleet.vllm.models[0]),
        ("ollama", fleet.ollama, fleet.ollama.models[0]),
        ("router", fleet.router, fleet.router.models[0]),  # a model name with a slash
        ("sglang", fleet.sglang, fleet.sglang.model),
        ("flaky", fleet.flaky, "flaky-a"),
    ]
    everyone = [fake for _, fake, _ in cases] + [fake_llm]
    for provider, fake, model in cases:
        fake.script(model, Text(f"from {provider}"))
        assert _ask(client, f"{provider}/{model}", f"hello {provider}") == f"from {provider}"
        body = fake.requests(model)[-1]
        assert body["model"] == model and body["messages"][-1]["content"] == f"hello {provider}"
        reached = [
            other for other in everyone if any(f"hello {provider}" in str(b) for b in other.all_requests())
        ]
        assert reached == [fake]


def test_unknown_provider_is_a_422_naming_the_configured_ones(srv: ThreadServer) -> None:
    client = srv.client()
    with pytest.raises(UnprocessableEntityError) as info:
        client.agents.create(model="vlm/qwen")
    body = info.value.body
    assert isinstance(body, dict)
    assert "unknown model provider 'vlm'" in body["detail"]
    assert "configured: dead, flaky, ollama, openai, router, sglang, vllm" in body["detail"]


def test_unreachable_endpoint_fails_the_run_not_the_server(srv: ThreadServer) -> None:
    client = srv.client()
    agent = client.agents.create(name="dead", model="dead/ghost")
    run = client.agents.messages.create_async(agent_id=agent.id, input="anyone?")
    done = wait_for_run(client, run.id, timeout=30)
    assert (done.status, done.stop_reason) == ("failed", "llm_api_error")
    assert done.metadata is not None and "dead unreachable" in str(done.metadata["error"])
    assert client.health().status == "ok"
