"""otid idempotency of create_async: a retry with the same otids returns the earlier run and runs once.

Keys are the set of otids of one request, scoped to one agent; reusing part of a set is a conflict.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from letta_client import ConflictError, UnprocessableEntityError
from tests.fakes.fake_llm import Delay, FakeLLM, Text
from tests.support import ThreadServer, async_wait_for_run, wait_for_run


def _messages(*otids: str) -> Any:
    return [{"role": "user", "content": f"message {otid}", "otid": otid} for otid in otids]


def _otid() -> str:
    return f"otid-{uuid.uuid4().hex[:12]}"


def test_retry_returns_the_same_run_and_executes_once(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="idem", model=handle)
    otids = (_otid(), _otid())
    first = client.agents.messages.create_async(agent_id=agent.id, messages=_messages(*otids))
    again = client.agents.messages.create_async(agent_id=agent.id, messages=_messages(*otids))
    assert again.id == first.id
    wait_for_run(client, first.id)
    after = client.agents.messages.create_async(agent_id=agent.id, messages=_messages(*otids))
    assert (after.id, after.status) == (first.id, "completed")

    assert len(fake_llm.requests(model)) == 1
    assert [r.id for r in client.runs.list(agent_id=agent.id).items] == [first.id]
    users = client.agents.messages.list(agent.id, include_return_message_types=["user_message"]).items
    assert sorted(m.otid or "" for m in users) == sorted(otids)


async def test_concurrent_duplicates_share_one_run(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.async_client()
    agent = await client.agents.create(name="idem-concurrent", model=handle)
    otid = _otid()
    fake_llm.script(model, Delay(0.1, Text("once")))
    runs = await asyncio.gather(
        *(client.agents.messages.create_async(agent_id=agent.id, messages=_messages(otid)) for _ in range(10))
    )
    assert len({r.id for r in runs}) == 1
    done = await async_wait_for_run(client, runs[0].id)
    assert done.status == "completed"
    assert [r.id for r in (await client.runs.list(agent_id=agent.id)).items] == [runs[0].id]
    assert len(fake_llm.requests(model)) == 1


def test_partial_reuse_of_otids_conflicts(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="idem-conflict", model=handle)
    a, b, c = _otid(), _otid(), _otid()
    first = client.agents.messages.create_async(agent_id=agent.id, messages=_messages(a, b))
    wait_for_run(client, first.id)

    for otids in ((a, c), (a,), (a, b, c)):
        with pytest.raises(ConflictError) as conflict:
            client.agents.messages.create_async(agent_id=agent.id, messages=_messages(*otids))
        assert conflict.value.status_code == 409
        assert first.id in str(conflict.value.body)
    assert [r.id for r in client.runs.list(agent_id=agent.id).items] == [first.id]
    assert len(fake_llm.requests(model)) == 1

    # A fresh set of otids is a new request.
    fresh = client.agents.messages.create_async(agent_id=agent.id, messages=_messages(c))
    assert fresh.id != first.id
    assert wait_for_run(client, fresh.id).status == "completed"


def test_otids_are_scoped_per_agent(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    one = client.agents.create(name="idem-one", model=handle)
    two = client.agents.create(name="idem-two", model=handle)
    otid = _otid()
    first = client.agents.messages.create_async(agent_id=one.id, messages=_messages(otid))
    wait_for_run(client, first.id)
    second = client.agents.messages.create_async(agent_id=two.id, messages=_messages(otid))
    assert second.id != first.id
    assert (second.agent_id, wait_for_run(client, second.id).status) == (two.id, "completed")
    assert len(fake_llm.requests(model)) == 2


def test_deleted_run_frees_its_otids(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="idem-deleted", model=handle)
    otid = _otid()
    first = client.agents.messages.create_async(agent_id=agent.id, messages=_messages(otid))
    wait_for_run(client, first.id)
    client.delete(f"/v1/runs/{first.id}", cast_to=object)
    second = client.agents.messages.create_async(agent_id=agent.id, messages=_messages(otid))
    assert second.id != first.id
    assert wait_for_run(client, second.id).status == "completed"
    assert len(fake_llm.requests(model)) == 2


def test_repeated_otid_within_one_request_is_rejected(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="idem-dup", model=handle)
    otid = _otid()
    with pytest.raises(UnprocessableEntityError) as rejected:
        client.agents.messages.create_async(agent_id=agent.id, messages=_messages(otid, otid))
    assert rejected.value.status_code == 422
    assert "otid" in str(rejected.value.body)
