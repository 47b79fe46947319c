"""A bounded queue per agent: past ``max_queued_runs_per_agent`` waiting runs, create_async is a 429."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from tests.fakes.fake_llm import FakeLLM, Hang
from tests.support import ThreadServer, wait_until


def test_runs_past_the_bound_get_429_with_retry_after(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    srv = fresh_server(max_queued_runs_per_agent=2)
    client = srv.client()
    agent = client.agents.create(model=handle)
    other = client.agents.create(model=handle)
    fake_llm.set_default(model, Hang())
    first = client.agents.messages.create_async(agent_id=agent.id, input="runs (and hangs)")
    wait_until(lambda: client.runs.retrieve(first.id).status == "running", what="the first run to start")
    queued = [client.agents.messages.create_async(agent_id=agent.id, input=f"waits {i}") for i in range(2)]

    url = f"{srv.base_url}/v1/agents/{agent.id}/messages/async"
    refused = httpx.post(url, json={"input": "one too many"})
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "1"
    body = refused.json()
    assert body["code"] == "too_many_requests" and "2 runs waiting" in body["detail"]
    # Nothing was stored for the refused request; other agents are not affected.
    assert len(client.runs.list(agent_id=agent.id).items) == 3
    assert client.agents.messages.create_async(agent_id=other.id, input="fine").status == "created"

    # Once a queued run leaves the queue (cancelled here), there is room again.
    client.agents.messages.cancel(agent.id, run_ids=[queued[0].id])
    assert httpx.post(url, json={"input": "room again"}).status_code == 200
    client.agents.messages.cancel(agent.id)
    client.agents.messages.cancel(other.id)
