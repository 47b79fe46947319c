"""Conversations over the SDK: create, retrieve, update, list (filters, order, cursors), delete, fork,
and a conversation's message history; on both backends."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from letta_client import Letta, NotFoundError, UnprocessableEntityError
from tests.fakes.fake_llm import FakeLLM, Hang, Text, ToolCall
from tests.support import CALCULATOR, UUID4, ThreadServer, api_error, wait_for_run, wait_until

MISSING_AGENT = f"agent-{uuid.uuid4()}"
MISSING_CONV = f"conv-{uuid.uuid4()}"


def _locs(body: dict[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in body.get("errors", [])]


def _ids(items: Any) -> list[str]:
    return [item.id for item in items]


def _say(client: Letta, fake_llm: FakeLLM, model: str, conversation_id: str, text: str) -> None:
    """One user/assistant exchange in a conversation (the fake answers ``re: <text>``)."""
    fake_llm.script(model, Text(f"re: {text}"))
    events = list(client.conversations.messages.create(conversation_id, input=text))
    assert events[-2].stop_reason == "end_turn"  # type: ignore[union-attr]


def _history(client: Letta, conversation_id: str, **params: Any) -> list[Any]:
    return list(client.conversations.messages.list(conversation_id, order="asc", limit=1000, **params).items)


def _texts(messages: list[Any]) -> list[tuple[str, Any]]:
    return [(m.message_type, getattr(m, "content", None)) for m in messages]


def test_create_and_retrieve(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    conv = client.conversations.create(
        agent_id=agent.id,
        summary="Trip planning",
        description="Dates and places",
        model=handle,
        model_settings={"provider_type": "openai", "temperature": 0.2},
        context_window_limit=4096,
    )
    assert re.fullmatch(f"conv-{UUID4}", conv.id)
    assert (conv.agent_id, conv.summary, conv.description) == (agent.id, "Trip planning", "Dates and places")
    assert (conv.model, conv.context_window_limit) == (handle, 4096)
    assert conv.api_model_settings is not None and conv.api_model_settings.temperature == 0.2
    assert (conv.archived, conv.archived_at, conv.last_message_at) == (False, None, None)
    assert conv.in_context_message_ids == []
    assert conv.created_at is not None and conv.updated_at is not None
    assert (conv.created_by_id, conv.last_updated_by_id) == (None, None)

    again = client.conversations.retrieve(conv.id)
    assert again.model_dump() == conv.model_dump()

    bare = client.conversations.create(agent_id=agent.id)
    assert (bare.summary, bare.model, bare.api_model_settings) == (None, None, None)


def test_create_rejects_unknown_agents_and_models(server: ThreadServer, handle: str) -> None:
    client = server.client()
    body = api_error(lambda: client.conversations.create(agent_id=MISSING_AGENT), 404)
    assert MISSING_AGENT in body["detail"]
    body = api_error(lambda: client.conversations.create(agent_id="agent-123"), 422)
    assert "agent-<uuid4>" in body["detail"] and ["query", "agent_id"] in _locs(body)

    agent = client.agents.create(model=handle)
    body = api_error(lambda: client.conversations.create(agent_id=agent.id, model="nope/x"), 422)
    assert "nope" in body["detail"] and ["body", "model"] in _locs(body)
    body = api_error(lambda: client.conversations.create(agent_id=agent.id, context_window_limit=0), 422)
    assert ["body", "context_window_limit"] in _locs(body)


def test_update(server: ThreadServer, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    conv = client.conversations.create(agent_id=agent.id, summary="first")

    renamed = client.conversations.update(conv.id, summary="second", description="about things")
    assert (renamed.summary, renamed.description) == ("second", "about things")
    assert renamed.updated_at is not None and conv.updated_at is not None
    assert renamed.updated_at >= conv.updated_at

    archived = client.conversations.update(conv.id, archived=True)
    assert archived.archived and archived.archived_at is not None
    assert archived.summary == "second"  # fields left out are unchanged
    assert client.conversations.update(conv.id, archived=True).archived_at == archived.archived_at
    restored = client.conversations.update(conv.id, archived=False)
    assert (restored.archived, restored.archived_at) == (False, None)

    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    other = f"openai/{model}-b"
    changed = client.conversations.update(
        conv.id, last_message_at=when, model=other, context_window_limit=999
    )
    assert (changed.last_message_at, changed.model, changed.context_window_limit) == (when, other, 999)
    naive = client.conversations.update(conv.id, last_message_at="2030-01-02T03:04:06")
    assert naive.last_message_at == when + timedelta(seconds=1)  # no offset: UTC
    cleared = client.conversations.update(conv.id, model=None, summary=None)
    assert (cleared.model, cleared.summary) == (None, None)

    body = api_error(lambda: client.conversations.update(conv.id, model="nope/x"), 422)
    assert ["body", "model"] in _locs(body)
    body = api_error(lambda: client.conversations.update(conv.id, archived=None), 422)
    assert ["body", "archived"] in _locs(body)
    assert client.conversations.retrieve(conv.id).model is None


def test_list_filters(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    other = client.agents.create(model=handle)
    uniq = uuid.uuid4().hex[:10]
    alpha = client.conversations.create(agent_id=agent.id, summary=f"{uniq} Alpha trip")
    beta = client.conversations.create(
        agent_id=agent.id, summary="beta", description=f"the {uniq} BETA notes"
    )
    gamma = client.conversations.create(agent_id=agent.id, summary="gamma")
    hidden = client.conversations.create(agent_id=agent.id, summary=f"{uniq} hidden", hidden=True)
    elsewhere = client.conversations.create(agent_id=other.id, summary=f"{uniq} elsewhere")
    client.conversations.update(gamma.id, archived=True)

    def ids(**params: Any) -> set[str]:
        return set(_ids(client.conversations.list(limit=1000, **params)))

    assert ids(agent_id=agent.id) == {alpha.id, beta.id}  # unarchived by default, hidden never
    assert ids(agent_id=agent.id, archive_status="archived") == {gamma.id}
    assert ids(agent_id=agent.id, archive_status="all") == {alpha.id, beta.id, gamma.id}
    assert ids(agent_id=other.id) == {elsewhere.id}
    assert ids(summary_search=uniq.upper()) == {alpha.id, beta.id, elsewhere.id}
    assert ids(summary_search=f"{uniq} alpha") == {alpha.id}
    assert ids(summary_search=f"{uniq} beta", agent_id=agent.id) == {beta.id}
    assert ids(summary_search=f"{uniq}%") == set()  # LIKE wildcards are literal
    assert {alpha.id, beta.id, elsewhere.id} <= ids()  # every agent's without agent_id
    assert hidden.id not in ids(archive_status="all")
    assert client.conversations.retrieve(hidden.id).summary == f"{uniq} hidden"

    assert api_error(lambda: client.conversations.list(agent_id=MISSING_AGENT), 404)
    body = api_error(lambda: client.conversations.list(agent_id="agent-1"), 422)
    assert ["query", "agent_id"] in _locs(body)


def test_list_order_and_cursor(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    ids = [client.conversations.create(agent_id=agent.id, summary=f"c{i}").id for i in range(5)]

    def page(**params: Any) -> list[str]:
        return _ids(client.conversations.list(agent_id=agent.id, **params))

    assert page() == ids[::-1]  # newest first by default
    assert page(order="asc") == ids
    assert page(order="asc", limit=2) == ids[:2]
    assert page(order="asc", limit=2, after=ids[1]) == ids[2:4]
    assert page(order="asc", after=ids[3]) == ids[4:]
    assert page(order="asc", after=ids[4]) == []
    assert page(order="desc", limit=2, after=ids[3]) == [ids[2], ids[1]]

    # Ordered by last_message_at; conversations never messaged sort by their creation time.
    base = datetime.now(UTC) + timedelta(days=1)
    client.conversations.update(ids[0], last_message_at=base + timedelta(minutes=2))
    client.conversations.update(ids[2], last_message_at=base + timedelta(minutes=1))
    by_message = [ids[0], ids[2], ids[4], ids[3], ids[1]]
    assert page(order_by="last_message_at") == by_message
    assert page(order_by="last_message_at", order="asc") == by_message[::-1]
    assert page(order_by="last_message_at", limit=2, after=ids[2]) == by_message[2:4]
    assert page(order_by="last_message_at", order="asc", after=ids[3]) == by_message[::-1][2:]
    assert page(order_by="last_message_at", limit=2, extra_query={"before": ids[4]}) == by_message[:2]
    # No run has completed in any of them: last_run_completion falls back to creation order.
    assert page(order_by="last_run_completion") == ids[::-1]

    body = api_error(lambda: client.conversations.list(agent_id=agent.id, after=MISSING_CONV), 404)
    assert MISSING_CONV in body["detail"]


def test_unknown_and_malformed_ids(server: ThreadServer) -> None:
    client = server.client()
    calls: dict[str, Callable[[str], object]] = {
        "retrieve": lambda conv_id: client.conversations.retrieve(conv_id),
        "update": lambda conv_id: client.conversations.update(conv_id, summary="x"),
        "delete": lambda conv_id: client.conversations.delete(conv_id),
        "fork": lambda conv_id: client.conversations.fork(conv_id),
        "messages": lambda conv_id: client.conversations.messages.list(conv_id),
    }
    for name, call in calls.items():
        with pytest.raises(NotFoundError) as missing:
            call(MISSING_CONV)
        assert MISSING_CONV in str(missing.value.body), name
        with pytest.raises(UnprocessableEntityError) as malformed:
            call("conv-123")
        body = malformed.value.body
        assert isinstance(body, dict)
        assert "conv-<uuid4>" in body["detail"], name
        assert ["path", "conversation_id"] in _locs(body), name


def test_delete(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    conv = client.conversations.create(agent_id=agent.id)
    kept = client.conversations.create(agent_id=agent.id)
    client.conversations.delete(conv.id)
    body = api_error(lambda: client.conversations.retrieve(conv.id), 404)
    assert conv.id in body["detail"]
    api_error(lambda: client.conversations.delete(conv.id), 404)
    assert _ids(client.conversations.list(agent_id=agent.id, archive_status="all")) == [kept.id]


def test_fork_of_an_empty_conversation(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    source = client.conversations.create(agent_id=agent.id, summary="source", model=handle)
    fork = client.conversations.fork(source.id)
    assert re.fullmatch(f"conv-{UUID4}", fork.id) and fork.id != source.id
    assert (fork.agent_id, fork.summary, fork.model) == (agent.id, "source", handle)
    assert fork.in_context_message_ids == []
    assert _history(client, fork.id) == []

    hidden = client.conversations.fork(source.id, hidden=True)
    assert set(_ids(client.conversations.list(agent_id=agent.id))) == {source.id, fork.id}
    assert client.conversations.retrieve(hidden.id).agent_id == agent.id

    # The agent's default thread: "default" with agent_id, or (deprecated) the agent id.
    assert client.conversations.fork("default", agent_id=agent.id).agent_id == agent.id
    assert client.conversations.fork(agent.id).agent_id == agent.id
    body = api_error(lambda: client.conversations.fork("default"), 422)
    assert ["query", "agent_id"] in _locs(body)
    api_error(lambda: client.conversations.fork("default", agent_id=MISSING_AGENT), 404)
    body = api_error(lambda: client.conversations.fork(source.id, message_id="message-1"), 422)
    assert ["query", "message_id"] in _locs(body)
    missing = f"message-{uuid.uuid4()}"
    body = api_error(lambda: client.conversations.fork(source.id, message_id=missing), 404)
    assert missing in body["detail"]


def test_fork_of_the_default_thread_copies_its_history(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    for i in range(2):
        fake_llm.script(model, Text(f"answer {i}"))
        run = client.agents.messages.create_async(agent_id=agent.id, input=f"question {i}")
        assert wait_for_run(client, run.id).status == "completed"
    default = _history(client, "default", agent_id=agent.id)
    assert _texts(default) == [
        ("user_message", "question 0"),
        ("assistant_message", "answer 0"),
        ("user_message", "question 1"),
        ("assistant_message", "answer 1"),
    ]
    assert _ids(default) == _ids(client.agents.messages.list(agent.id, order="asc").items)

    fork = client.conversations.fork("default", agent_id=agent.id, message_id=default[1].id)
    copied = _history(client, fork.id)
    assert _texts(copied) == _texts(default[:2])
    assert fork.in_context_message_ids == _ids(copied)
    assert not set(_ids(copied)) & set(_ids(default))
    assert [(m.otid, m.date, m.run_id) for m in copied] == [(m.otid, m.date, m.run_id) for m in default[:2]]
    # The default thread is unchanged and shows none of the fork's messages.
    assert _ids(_history(client, "default", agent_id=agent.id)) == _ids(default)
    assert _ids(_history(client, agent.id)) == _ids(default)  # the deprecated agent-id form


# -- with messages sent to conversations (POST /v1/conversations/{id}/messages) -----------------------


def test_fork_diverges_from_its_parent(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    source = client.conversations.create(agent_id=agent.id, summary="parent")
    _say(client, fake_llm, model, source.id, "one")
    _say(client, fake_llm, model, source.id, "two")
    before = _history(client, source.id)
    assert _texts(before) == [
        ("user_message", "one"),
        ("assistant_message", "re: one"),
        ("user_message", "two"),
        ("assistant_message", "re: two"),
    ]
    assert client.conversations.retrieve(source.id).in_context_message_ids == _ids(before)

    fork = client.conversations.fork(source.id)
    copied = _history(client, fork.id)
    assert _texts(copied) == _texts(before)
    assert not set(_ids(copied)) & set(_ids(before))
    assert [(m.otid, m.date, m.run_id) for m in copied] == [(m.otid, m.date, m.run_id) for m in before]

    _say(client, fake_llm, model, fork.id, "three")
    # The fork's next LLM request carries the copied history.
    request = fake_llm.requests(model)[-1]
    users = [m["content"] for m in request["messages"] if m["role"] == "user"]
    assert [u if isinstance(u, str) else u[0]["text"] for u in users] == ["one", "two", "three"]
    assert _texts(_history(client, fork.id))[4:] == [
        ("user_message", "three"),
        ("assistant_message", "re: three"),
    ]
    assert _ids(_history(client, source.id)) == _ids(before)
    assert client.conversations.retrieve(source.id).in_context_message_ids == _ids(before)


def test_fork_up_to_a_message(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    source = client.conversations.create(agent_id=agent.id)
    _say(client, fake_llm, model, source.id, "one")
    _say(client, fake_llm, model, source.id, "two")
    history = _history(client, source.id)

    fork = client.conversations.fork(source.id, message_id=history[1].id)
    assert _texts(_history(client, fork.id)) == _texts(history[:2])
    assert len(fork.in_context_message_ids or []) == 2

    # A message of another thread is not in this one's history.
    other = client.conversations.create(agent_id=agent.id)
    _say(client, fake_llm, model, other.id, "elsewhere")
    foreign = _history(client, other.id)[0].id
    body = api_error(lambda: client.conversations.fork(source.id, message_id=foreign), 404)
    assert foreign in body["detail"]


def test_messages_list_pages_and_filters(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    conv = client.conversations.create(agent_id=agent.id)
    for i in range(3):
        _say(client, fake_llm, model, conv.id, f"q{i}")
    ids = _ids(_history(client, conv.id))
    assert len(ids) == 6

    def page(**params: Any) -> list[str]:
        return _ids(client.conversations.messages.list(conv.id, **params).items)

    assert page() == ids[::-1]  # newest first by default
    assert page(order="asc", limit=2) == ids[:2]
    assert page(order="asc", limit=2, after=ids[1]) == ids[2:4]
    assert page(order="desc", limit=2, after=ids[4]) == [ids[3], ids[2]]
    assert page(order="asc", before=ids[2]) == ids[:2]
    assert [m.id for m in client.conversations.messages.list(conv.id, order="asc", limit=2)] == ids
    only = client.conversations.messages.list(
        conv.id, include_return_message_types=["assistant_message"], order="asc"
    )
    assert [getattr(m, "content", None) for m in only.items] == ["re: q0", "re: q1", "re: q2"]
    # The conversation's messages are its own: the agent's default thread has none of them.
    assert _history(client, "default", agent_id=agent.id) == []
    body = api_error(lambda: client.conversations.messages.list(conv.id, agent_id=MISSING_AGENT), 404)
    assert conv.id in body["detail"]


def test_list_by_last_run_completion(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    first, second, idle = (client.conversations.create(agent_id=agent.id) for _ in range(3))
    _say(client, fake_llm, model, second.id, "earlier")
    _say(client, fake_llm, model, first.id, "later")
    listed = _ids(client.conversations.list(agent_id=agent.id, order_by="last_run_completion"))
    assert listed == [first.id, second.id, idle.id]


def test_delete_cancels_a_live_run_first(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    # One run slot: the next run can only start once the deleted conversation's run has let go of it.
    srv: ThreadServer = fresh_server(max_concurrent_runs=1)
    client = srv.client()
    agent = client.agents.create(model=handle)
    doomed = client.conversations.create(agent_id=agent.id)
    fake_llm.script(model, Hang())
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            client.conversations.messages.create, doomed.id, input="take forever", streaming=False
        )
        fake_llm.wait_for_requests(model, 1)
        [run] = wait_until(lambda: client.runs.list(conversation_id=doomed.id, active=True).items)
        client.conversations.delete(doomed.id)
        # The waiting request is answered (whatever the answer) once its run is cancelled.
        pending.exception(timeout=15)

    api_error(lambda: client.conversations.retrieve(doomed.id), 404)
    kept = client.runs.retrieve(run.id)  # runs outlive their conversation
    assert (kept.status, kept.conversation_id) == ("cancelled", doomed.id)
    assert _history(client, "default", agent_id=agent.id) == []

    fake_llm.script(model, Text("still alive"))
    done = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    assert wait_for_run(client, done.id, timeout=10).status == "completed"


def test_a_fork_cut_inside_a_step_keeps_its_tool_returns_and_waits_on_an_unanswered_approval(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(model=handle)
    source = client.conversations.create(agent_id=agent.id)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Text("searched"))
    list(client.conversations.messages.create(source.id, input="look"))
    history = _history(client, source.id)
    assert [m.message_type for m in history] == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    # Cut at the tool call: its return comes along (the step is kept whole), the answer does not.
    fork = client.conversations.fork(source.id, message_id=history[1].id)
    assert [m.message_type for m in _history(client, fork.id)] == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ][:3]

    fake_llm.script(model, ToolCall("calculator", {"expression": "2+2"}))
    list(client.conversations.messages.create(source.id, input="compute", client_tools=[CALCULATOR]))
    request = [m for m in _history(client, source.id) if m.message_type == "approval_request_message"][-1]
    waiting = client.conversations.fork(source.id, message_id=request.id)
    # The copied request has no answer in the fork: the fork waits for one, like its source.
    api_error(lambda: list(client.conversations.messages.create(waiting.id, input="hello?")), 409)
