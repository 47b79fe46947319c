"""Archival memory over the SDK: passages created, listed, searched by meaning, filtered and deleted.

Embeddings come from the fake LLM's ``/v1/embeddings`` (``openai/fake-embedding``, a bag of hashed
words: texts that share words are near each other), so the rankings below are predictable.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from letta_client import Letta
from letta_client.types import AgentState
from tests.fakes.fake_llm import EMBEDDING_DIM, Error, FakeLLM, Text, ToolCall
from tests.support import UUID4, ThreadServer, api_error, wait_for_run

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _agent(client: Letta, handle: str, **kwargs: object) -> AgentState:
    return client.agents.create(model=handle, **kwargs)  # type: ignore[arg-type]


def _texts(found: object) -> list[str]:
    return [r.content for r in found.results]  # type: ignore[attr-defined]


def test_create_list_and_delete(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = _agent(client, handle)
    [first] = client.agents.passages.create(agent.id, text="The user likes green tea", tags=["food", "food"])
    assert re.fullmatch(f"passage-{UUID4}", first.id or "")
    assert (first.text, first.tags, first.metadata) == ("The user likes green tea", ["food"], {})
    assert first.embedding is not None and len(first.embedding) == EMBEDDING_DIM
    assert float(np.linalg.norm(first.embedding)) == pytest.approx(1.0, abs=1e-5)
    config = first.embedding_config
    assert config is not None
    assert (config.handle, config.embedding_model, config.embedding_dim) == (
        "openai/fake-embedding",
        "fake-embedding",
        EMBEDDING_DIM,
    )
    assert first.created_at is not None and abs(datetime.now(UTC) - first.created_at) < timedelta(minutes=1)

    later = [client.agents.passages.create(agent.id, text=f"note {i}")[0] for i in range(4)]
    ids = [str(first.id), *[str(p.id) for p in later]]
    assert [p.id for p in client.agents.passages.list(agent.id)] == ids
    assert [p.id for p in client.agents.passages.list(agent.id, ascending=False)] == ids[::-1]
    newest = httpx.get(f"{server.base_url}/v1/agents/{agent.id}/archival-memory", params={"order": "desc"})
    assert [p["id"] for p in newest.json()] == ids[::-1]
    page = client.agents.passages.list(agent.id, limit=2)
    assert [p.id for p in page] == ids[:2]
    assert [p.id for p in client.agents.passages.list(agent.id, limit=2, after=ids[1])] == ids[2:4]
    assert [p.id for p in client.agents.passages.list(agent.id, limit=2, before=ids[4])] == ids[2:4]
    assert [p.text for p in client.agents.passages.list(agent.id, search="GREEN")] == [
        "The user likes green tea"
    ]

    client.agents.passages.delete(ids[2], agent_id=agent.id)
    assert [p.id for p in client.agents.passages.list(agent.id)] == [ids[0], ids[1], ids[3], ids[4]]
    body = api_error(lambda: client.agents.passages.delete(ids[2], agent_id=agent.id), 404)
    assert ids[2] in body["detail"]
    other = _agent(client, handle)
    api_error(lambda: client.agents.passages.delete(ids[3], agent_id=other.id), 404)
    assert client.agents.passages.list(other.id) == []


def test_search_ranks_by_meaning(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = _agent(client, handle)
    for text in [
        "The user's cat is called Miso and sleeps all day",
        "The user flies to Tokyo on March third",
        "The user's favourite football team is Liverpool",
        "Meeting notes: budget review moved to Friday",
    ]:
        client.agents.passages.create(agent.id, text=text, tags=["user"] if "user" in text else [])

    found = client.agents.passages.search(agent.id, query="when does the user fly to Tokyo")
    assert found.count == len(found.results) == 4
    assert found.results[0].content == "The user flies to Tokyo on March third"
    assert found.results[0].tags == ["user"]
    assert re.fullmatch(f"passage-{UUID4}", found.results[0].id)
    assert datetime.fromisoformat(found.results[0].timestamp).utcoffset() == timedelta(0)

    top = client.agents.passages.search(agent.id, query="which football team", top_k=1)
    assert _texts(top) == ["The user's favourite football team is Liverpool"]
    # Another agent's memory is never searched.
    assert client.agents.passages.search(_agent(client, handle).id, query="Tokyo").count == 0

    scored = client.passages.search(agent_id=agent.id, query="the cat Miso", limit=2)
    assert [r.passage.text for r in scored][:1] == ["The user's cat is called Miso and sleeps all day"]
    assert len(scored) == 2 and scored[0].score > scored[1].score
    assert scored[0].passage.embedding_config is not None


def test_search_filters_tags_and_dates(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = _agent(client, handle, timezone="Asia/Tokyo")
    rows = [
        ("alpha", ["work"]),
        ("bravo", ["work", "urgent"]),
        ("charlie", ["home", "urgent"]),
        ("delta", []),
    ]
    for day, (text, tags) in enumerate(rows):
        client.agents.passages.create(
            agent.id, text=f"{text} item", tags=tags, created_at=T0 + timedelta(days=day)
        )

    def search(**kwargs: object) -> list[str]:
        found = client.agents.passages.search(agent.id, query="item", **kwargs)  # type: ignore[arg-type]
        return sorted(t.split()[0] for t in _texts(found))

    assert search() == ["alpha", "bravo", "charlie", "delta"]
    assert search(tags=["urgent"]) == ["bravo", "charlie"]
    assert search(tags=["work", "home"], tag_match_mode="any") == ["alpha", "bravo", "charlie"]
    assert search(tags=["work", "urgent"], tag_match_mode="all") == ["bravo"]
    assert search(start_datetime=T0 + timedelta(days=1)) == ["bravo", "charlie", "delta"]
    assert search(end_datetime=T0 + timedelta(days=1)) == ["alpha", "bravo"]
    assert search(start_datetime=T0 + timedelta(hours=1), end_datetime=T0 + timedelta(days=2, hours=1)) == [
        "bravo",
        "charlie",
    ]
    assert search(tags=["urgent"], start_datetime=T0 + timedelta(days=2)) == ["charlie"]
    assert search(start_datetime="2025-03-02T21:00:00+09:00") == ["bravo", "charlie", "delta"]

    # Timestamps are shown in the agent's timezone.
    [first] = client.agents.passages.search(agent.id, query="alpha", top_k=1).results
    assert first.timestamp == "2025-03-01T21:00:00+09:00"
    scored = client.passages.search(agent_id=agent.id, query="item", tags=["home"], start_date=T0)
    assert [r.passage.text for r in scored] == ["charlie item"]


def test_unknown_agent_and_bad_input(server: ThreadServer, handle: str) -> None:
    client = server.client()
    missing = f"agent-{uuid.uuid4()}"
    for call in (
        lambda: client.agents.passages.create(missing, text="x"),
        lambda: client.agents.passages.list(missing),
        lambda: client.agents.passages.search(missing, query="x"),
        lambda: client.agents.passages.delete(f"passage-{uuid.uuid4()}", agent_id=missing),
    ):
        assert missing in api_error(call, 404)["detail"]
    body = api_error(lambda: client.agents.passages.create("agent-nope", text="x"), 422)
    assert ["path", "agent_id"] in [e["loc"] for e in body["errors"]]

    agent = _agent(client, handle)

    def loc(call: object, status: int = 422) -> list[list[str | int]]:
        return [e["loc"] for e in api_error(call, status)["errors"]]  # type: ignore[arg-type]

    assert ["body", "text"] in loc(lambda: client.agents.passages.create(agent.id, text="  "))
    assert ["body", "tags", 1] in loc(
        lambda: client.agents.passages.create(agent.id, text="x", tags=["a", ""])
    )
    assert ["query", "top_k"] in loc(lambda: client.agents.passages.search(agent.id, query="x", top_k=0))
    assert ["query", "tag_match_mode"] in loc(
        lambda: client.agents.passages.search(agent.id, query="x", tag_match_mode="some")  # type: ignore[arg-type]
    )
    assert ["query", "start_datetime"] in loc(
        lambda: client.agents.passages.search(agent.id, query="x", start_datetime="yesterday")
    )
    assert ["query", "limit"] in loc(lambda: client.agents.passages.list(agent.id, limit=0))
    assert ["path", "memory_id"] in loc(lambda: client.agents.passages.delete("passage-1", agent_id=agent.id))
    assert ["body", "agent_id"] in loc(lambda: client.passages.search(query="x"))
    assert ["body", "query"] in loc(lambda: client.passages.search(agent_id=agent.id))
    assert ["body", "limit"] in loc(lambda: client.passages.search(agent_id=agent.id, query="x", limit=101))
    missing_query = httpx.get(f"{server.base_url}/v1/agents/{agent.id}/archival-memory/search")
    assert missing_query.status_code == 422
    assert ["query", "query"] in [e["loc"] for e in missing_query.json()["errors"]]
    body = api_error(lambda: client.agents.passages.list(agent.id, after=f"passage-{uuid.uuid4()}"), 404)
    assert "cursor" in body["detail"]


def test_embedding_service_failure_is_a_502(server: ThreadServer, fake_llm: FakeLLM, handle: str) -> None:
    client = server.client()
    model = f"emb-{uuid.uuid4().hex[:8]}"
    agent = _agent(client, handle, embedding=f"openai/{model}")
    fake_llm.script(model, Error(400, "input too long for this model"))
    body = api_error(lambda: client.agents.passages.create(agent.id, text="hello"), 502)
    assert body["code"] == "embedding_failed"
    assert "HTTP 400" in body["detail"] and "input too long" in body["detail"]
    assert client.agents.passages.list(agent.id) == []  # nothing half-written

    [stored] = client.agents.passages.create(agent.id, text="hello again")
    assert stored.embedding_config is not None and stored.embedding_config.handle == f"openai/{model}"
    assert fake_llm.requests(model)[-1]["input"] == ["hello again"]
    fake_llm.script(model, Error(400, "bad query"))
    assert api_error(lambda: client.agents.passages.search(agent.id, query="hello"), 502)["code"] == (
        "embedding_failed"
    )


def test_the_agents_archival_tools_share_this_memory(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = _agent(client, handle)
    client.agents.passages.create(agent.id, text="The user's sister lives in Lisbon", tags=["family"])
    insert = ToolCall(
        "archival_memory_insert", {"content": "The user's dog is called Biscuit", "tags": ["pets"]}
    )
    fake_llm.script(model, insert, Text("stored"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="remember my dog's name")
    assert wait_for_run(client, run.id).stop_reason == "end_turn"
    stored = client.agents.passages.list(agent.id, search="Biscuit")
    assert [(p.text, p.tags) for p in stored] == [("The user's dog is called Biscuit", ["pets"])]

    fake_llm.script(
        model, ToolCall("archival_memory_search", {"query": "where does the sister live"}), Text("ok")
    )
    run = client.agents.messages.create_async(agent_id=agent.id, input="where does my sister live?")
    assert wait_for_run(client, run.id).stop_reason == "end_turn"
    messages: list[dict[str, Any]] = fake_llm.requests(model)[-1]["messages"]
    result = json.loads([m for m in messages if m["role"] == "tool"][-1]["content"])
    assert result[0]["content"] == "The user's sister lives in Lisbon" and result[0]["tags"] == ["family"]
    assert len(result) == 2 and result[0]["relevance"] > result[1]["relevance"]
