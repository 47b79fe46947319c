"""override_model, override_system and client_skills against every provider wire format.

One server with OpenAI, Anthropic and a named SGLang endpoint (each a fake over real HTTP); an OpenAI
agent's single requests move to each provider and back. (The local model's turn is in
tests/integration/test_local_model.py, with the real model.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from letta_client import Letta
from tests.fakes import fake_anthropic
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_llm import FakeLLM, Text
from tests.fakes.fake_sglang import FakeSGLang
from tests.support import ThreadServer, wait_for_run

PIRATE = "You are a pirate. Answer in pirate speak."
SKILL = {"name": "pdf-reader", "description": "Reads PDF files", "location": "skills/pdf/SKILL.md"}


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def sglang_fake() -> Iterator[FakeSGLang]:
    with FakeSGLang([f"qwen-{uuid.uuid4().hex[:8]}"]) as fake:
        yield fake


def _system_seen(provider: str, fakes: dict[str, Any], model: str) -> str:
    """The system prompt of the provider's last request for ``model``, whatever its wire format."""
    if provider == "anthropic":
        body = fakes["anthropic"].requests(model)[-1]
        system = body.get("system", "")
        return system if isinstance(system, str) else " ".join(b["text"] for b in system)
    fake = fakes[provider]
    chats = [b for b in fake.requests(model) if "messages" in b]
    first = chats[-1]["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


@pytest.mark.parametrize("provider", ["openai", "anthropic", "sglang"])
def test_overrides_reach_each_provider_for_one_request_only(
    fresh_server: Callable[..., ThreadServer],
    fake_llm: FakeLLM,
    anthropic_fake: FakeAnthropic,
    sglang_fake: FakeSGLang,
    provider: str,
) -> None:
    srv = fresh_server(
        anthropic_api_key="test",
        anthropic_base_url=anthropic_fake.base_url,
        llm_endpoints={"sglang": {"base_url": sglang_fake.base_url, "kind": "sglang"}},
    )
    client: Letta = srv.client()
    own_model = f"own-{uuid.uuid4().hex[:8]}"
    agent = client.agents.create(
        model=f"openai/{own_model}",
        memory_blocks=[{"label": "persona", "value": "I am a careful archivist."}],
    )
    fakes: dict[str, Any] = {"openai": fake_llm, "anthropic": anthropic_fake, "sglang": sglang_fake}
    if provider == "openai":
        other = f"other-{uuid.uuid4().hex[:8]}"
        fake_llm.set_default(other, Text("aye"))
    elif provider == "anthropic":
        other = f"claude-3-5-haiku-{uuid.uuid4().hex[:8]}"
        anthropic_fake.set_default(other, fake_anthropic.Text("aye"))
    else:
        other = sglang_fake.model
        sglang_fake.set_default(other, Text("aye"))
    handle = f"{provider}/{other}"

    # client_skills are rendered into the compiled system prompt, next to the memory blocks.
    run = client.agents.messages.create_async(
        agent_id=agent.id, input="hello", override_model=handle, client_skills=[SKILL]
    )
    assert wait_for_run(client, run.id).status == "completed"
    compiled = _system_seen(provider, fakes, other)
    assert "pdf-reader" in compiled and "skills/pdf/SKILL.md" in compiled
    assert "I am a careful archivist." in compiled

    # override_system replaces the compiled prompt for that request.
    run = client.agents.messages.create_async(
        agent_id=agent.id, input="hello again", override_model=handle, override_system=PIRATE
    )
    assert wait_for_run(client, run.id).status == "completed"
    assert _system_seen(provider, fakes, other) == PIRATE
    steps = client.runs.steps.list(run.id).items
    assert steps and steps[0].model_handle == handle

    # The next plain request is the agent's own model and prompt again.
    fake_llm.set_default(own_model, Text("back"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="and you?")
    assert wait_for_run(client, run.id).status == "completed"
    own = _system_seen("openai", fakes, own_model)
    assert own != PIRATE and "I am a careful archivist." in own and "pdf-reader" not in own
    assert client.agents.retrieve(agent.id).model == f"openai/{own_model}"
