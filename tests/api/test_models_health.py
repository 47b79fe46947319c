"""Health, the model listing, a server without providers, and the server password (LETTA_SERVER_PASSWORD)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from letta_client import AuthenticationError, Letta, UnprocessableEntityError
from tests.fakes.fake_llm import FakeLLM, Text
from tests.support import ThreadServer, wait_for_run

from agenthost import __version__


def test_health(server: ThreadServer) -> None:
    health = server.client().health()
    assert (health.status, health.version) == ("ok", __version__)
    response = httpx.get(f"{server.base_url}/v1/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_models_list_the_fake_models(server: ThreadServer, fake_llm: FakeLLM) -> None:
    client = server.client()
    models = client.models.list()
    by_handle = {m.handle: m for m in models}
    assert set(by_handle) == {f"openai/{name}" for name in fake_llm.models}
    window = server.settings.default_context_window
    for name in fake_llm.models:
        entry = by_handle[f"openai/{name}"]
        assert (entry.model, entry.name) == (name, name)
        assert (entry.provider_name, entry.provider_type) == ("openai", "openai")
        assert entry.context_window == window and entry.max_context_window == window
        assert entry.api_model_endpoint == fake_llm.base_url

    assert {m.handle for m in client.models.list(provider_name="openai")} == set(by_handle)
    assert {m.handle for m in client.models.list(provider_type="openai")} == set(by_handle)
    assert client.models.list(provider_name="anthropic") == []
    assert client.models.list(provider_type="anthropic") == []


def test_listed_model_serves_an_agent(server: ThreadServer, fake_llm: FakeLLM) -> None:
    client = server.client()
    handle = client.models.list()[0].handle
    assert handle is not None
    agent = client.agents.create(model=handle)
    assert agent.model == handle and agent.llm_config.context_window == server.settings.default_context_window


def test_no_provider_configured(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str
) -> None:
    srv = fresh_server(openai_base_url=None, openai_api_key=None, local_model="off")
    client = srv.client()
    assert client.models.list() == []
    with pytest.raises(UnprocessableEntityError) as info:
        client.agents.create(model=f"openai/{model}")
    body = info.value.body
    assert isinstance(body, dict)
    assert "unknown model provider 'openai'" in body["detail"]
    assert "configured: none" in body["detail"] and "OPENAI_API_KEY" in body["detail"]
    assert fake_llm.requests(model) == []
    assert client.health().status == "ok"


def _client(srv: ThreadServer, api_key: str) -> Letta:
    return Letta(base_url=srv.base_url, api_key=api_key, max_retries=0, timeout=30)


def test_server_password(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    srv = fresh_server(server_password="s3cret")
    wrong = _client(srv, "not-it")
    for call in (
        wrong.models.list,
        lambda: wrong.agents.list().items,
        lambda: wrong.agents.create(model=handle),
        lambda: wrong.runs.list().items,
    ):
        with pytest.raises(AuthenticationError) as info:
            call()
        assert info.value.status_code == 401
        assert isinstance(info.value.body, dict) and "password" in info.value.body["detail"]
    assert httpx.get(f"{srv.base_url}/v1/agents/").status_code == 401
    assert httpx.get(f"{srv.base_url}/v1/models/", headers={"Authorization": "Bearer"}).status_code == 401
    assert wrong.health().status == "ok"
    assert httpx.get(f"{srv.base_url}/v1/health/").status_code == 200

    right = _client(srv, "s3cret")
    agent = right.agents.create(model=handle, name=model)
    assert [a.id for a in right.agents.list(name=model).items] == [agent.id]
    fake_llm.script(model, Text("authorised"))
    run = right.agents.messages.create_async(agent_id=agent.id, input="hi")
    assert wait_for_run(right, run.id).status == "completed"
    with pytest.raises(AuthenticationError):
        wrong.runs.retrieve(run.id)
