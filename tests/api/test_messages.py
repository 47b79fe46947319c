"""agents.messages: history (cursors, order, filters), sync create (plain and SSE), input forms, otids.

Every test drives the real SDK over HTTP against both backends, with the fake LLM scripted per model.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, get_args

import httpx
from letta_client import Letta
from letta_client.types.agents import AssistantMessage, ToolCallMessage, UserMessage
from letta_client.types.agents import ToolCall as SdkToolCall
from letta_client.types.agents.letta_streaming_response import LettaStopReason, LettaUsageStatistics
from tests.fakes.fake_llm import Delay, FakeLLM, Text, ToolCall
from tests.support import TOOL_STEP_THEN_ANSWER, ThreadServer, async_wait_for_run, wait_for_run

from agenthost.schemas.common import MessageType

PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


def _converse(client: Letta, fake_llm: FakeLLM, model: str, agent_id: str, turns: int) -> list[str]:
    """Run ``turns`` user/assistant exchanges; return the agent's message ids, oldest first."""
    for i in range(turns):
        fake_llm.script(model, Text(f"answer {i}"))
        run = client.agents.messages.create_async(agent_id=agent_id, input=f"question {i}")
        assert wait_for_run(client, run.id).status == "completed"
    return [m.id for m in client.agents.messages.list(agent_id, order="asc", limit=1000).items]


def _ids(page: Any) -> list[str]:
    return [m.id for m in page.items]


def test_list_orders_and_limits(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="history", model=handle)
    ids = _converse(client, fake_llm, model, agent.id, 3)
    assert len(ids) == 6

    asc = client.agents.messages.list(agent.id, order="asc")
    assert [m.message_type for m in asc.items] == ["user_message", "assistant_message"] * 3
    assert [getattr(m, "content", None) for m in asc.items][:2] == ["question 0", "answer 0"]
    assert _ids(client.agents.messages.list(agent.id)) == ids[::-1]  # newest first by default
    assert _ids(client.agents.messages.list(agent.id, order="desc")) == ids[::-1]
    assert _ids(client.agents.messages.list(agent.id, order="asc", limit=2)) == ids[:2]
    assert _ids(client.agents.messages.list(agent.id, order="desc", limit=2)) == ids[:-3:-1]


def test_list_cursors(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="cursors", model=handle)
    ids = _converse(client, fake_llm, model, agent.id, 3)

    def page(**kwargs: Any) -> list[str]:
        return _ids(client.agents.messages.list(agent.id, **kwargs))

    assert page(order="asc", after=ids[1]) == ids[2:]
    assert page(order="asc", after=ids[1], limit=2) == ids[2:4]
    assert page(order="asc", before=ids[3]) == ids[:3]
    assert page(order="asc", before=ids[4], limit=2) == ids[2:4]  # the two nearest the cursor
    assert page(order="desc", after=ids[4]) == ids[3::-1]
    assert page(order="desc", before=ids[1], limit=2) == [ids[3], ids[2]]
    assert page(order="asc", after=ids[1], before=ids[4]) == ids[2:4]
    # The SDK's auto-pagination follows the `after` cursor page by page.
    assert [m.id for m in client.agents.messages.list(agent.id, order="asc", limit=2)] == ids


def test_list_filters_by_message_type(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="filter", model=handle)
    _converse(client, fake_llm, model, agent.id, 2)
    only = client.agents.messages.list(
        agent.id, include_return_message_types=["assistant_message"], order="asc"
    )
    assert [(m.message_type, getattr(m, "content", None)) for m in only.items] == [
        ("assistant_message", "answer 0"),
        ("assistant_message", "answer 1"),
    ]
    users = client.agents.messages.list(agent.id, include_return_message_types=["user_message"])
    assert {m.message_type for m in users.items} == {"user_message"}
    assert len(users.items) == 2


def test_use_assistant_message_renders_send_message(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="legacy", model=handle)
    fake_llm.script(model, ToolCall("send_message", {"message": "via the tool"}))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hello")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert len(fake_llm.requests(model)) == 1  # send_message ends the turn

    shown = client.agents.messages.list(agent.id, order="asc").items
    assistant = [m for m in shown if isinstance(m, AssistantMessage)]
    assert [m.content for m in assistant] == ["via the tool"]
    assert not [m for m in shown if m.message_type == "tool_call_message"]

    raw = client.agents.messages.list(agent.id, order="asc", use_assistant_message=False).items
    assert not [m for m in raw if m.message_type == "assistant_message"]
    calls = [m for m in raw if isinstance(m, ToolCallMessage)]
    assert len(calls) == 1
    assert isinstance(calls[0].tool_call, SdkToolCall) and calls[0].tool_call.name == "send_message"
    assert calls[0].id == assistant[0].id
    # The type filter applies to the rendered type.
    filtered = client.agents.messages.list(agent.id, include_return_message_types=["assistant_message"]).items
    assert [m.id for m in filtered] == [assistant[0].id]


def test_sync_create_returns_response_and_run(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="sync", model=handle)
    fake_llm.script(model, Text("synchronous answer", prompt_tokens=12, completion_tokens=4))
    response = client.agents.messages.create(agent.id, input="hi")
    (answer,) = response.messages
    assert isinstance(answer, AssistantMessage) and answer.content == "synchronous answer"
    assert response.stop_reason.stop_reason == "end_turn"
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.step_count) == (
        12,
        4,
        16,
        1,
    )
    assert usage.run_ids is not None and len(usage.run_ids) == 1
    run = client.runs.retrieve(usage.run_ids[0])
    assert (run.agent_id, run.status, run.background) == (agent.id, "completed", False)
    assert answer.run_id == run.id
    assert [r.id for r in client.runs.list(agent_id=agent.id, background=False)] == [run.id]


def test_sync_create_streaming_yields_sse(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="stream", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "nothing"}), Text("streamed answer"))
    events = list(client.agents.messages.create(agent.id, input="hi", streaming=True))
    kinds = [e.message_type for e in events]
    assert kinds == TOOL_STEP_THEN_ANSWER
    assert isinstance(events[2], AssistantMessage) and events[2].content == "streamed answer"
    stop, usage = events[-2], events[-1]
    assert isinstance(stop, LettaStopReason) and stop.stop_reason == "end_turn"
    assert isinstance(usage, LettaUsageStatistics)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.step_count) == (20, 10, 2)


def test_input_string_reaches_llm(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="input-str", model=handle)
    client.agents.messages.create(agent.id, input="plain text please")
    (request,) = fake_llm.requests(model)
    assert request["model"] == model
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][-1] == {"role": "user", "content": "plain text please"}


def test_input_content_parts_reach_llm_in_openai_format(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="input-parts", model=handle)
    parts: list[Any] = [
        {"type": "text", "text": "what is in these pictures?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
    ]
    run = client.agents.messages.create_async(agent_id=agent.id, input=parts)
    assert wait_for_run(client, run.id).status == "completed"
    (request,) = fake_llm.requests(model)
    assert request["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in these pictures?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        ],
    }
    (user,) = client.runs.messages.list(run.id).items[:1]
    assert isinstance(user, UserMessage) and isinstance(user.content, list)
    assert [p.type for p in user.content] == ["text", "image", "image"]


def test_otid_is_stored_on_user_message(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="otid", model=handle)
    run = client.agents.messages.create_async(
        agent_id=agent.id, messages=[{"role": "user", "content": "tagged", "otid": "client-otid-1"}]
    )
    wait_for_run(client, run.id)
    (user,) = client.agents.messages.list(agent.id, include_return_message_types=["user_message"]).items
    assert isinstance(user, UserMessage)
    assert (user.otid, user.run_id, user.content) == ("client-otid-1", run.id, "tagged")


async def test_back_to_back_runs_complete_in_order_with_shared_history(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.async_client()
    agent = await client.agents.create(name="fifo", model=handle)
    # The first answer is slow, so the second request is accepted while the first still runs.
    fake_llm.script(model, Delay(0.3, Text("first answer")), Text("second answer"))
    first = await client.agents.messages.create_async(agent_id=agent.id, input="first question")
    second = await client.agents.messages.create_async(agent_id=agent.id, input="second question")
    assert (first.status, second.status) == ("created", "created")
    done_first, done_second = await asyncio.gather(
        async_wait_for_run(client, first.id), async_wait_for_run(client, second.id)
    )
    assert (done_first.status, done_second.status) == ("completed", "completed")
    assert done_first.completed_at is not None and done_second.completed_at is not None
    assert done_first.completed_at <= done_second.completed_at

    requests = fake_llm.requests(model)
    assert len(requests) == 2
    assert [m for m in requests[1]["messages"] if m["role"] != "system"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    history = (await client.agents.messages.list(agent.id, order="asc")).items
    assert [m.run_id for m in history] == [first.id, first.id, second.id, second.id]


def test_openapi_documents_the_message_union(server: ThreadServer) -> None:
    doc = httpx.get(f"{server.base_url}/openapi.json").json()
    routes = (
        "/v1/agents/{agent_id}/messages",
        "/v1/runs/{run_id}/messages",
        "/v1/conversations/{conversation_id}/messages",
    )
    for path in routes:
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["type"] == "array", path
        items = schema["items"]
        mapping = items["discriminator"]["mapping"]
        assert items["discriminator"]["propertyName"] == "message_type"
        assert set(mapping) == set(get_args(MessageType)), path
        assert {v["$ref"] for v in items["oneOf"]} == set(mapping.values())
    components = doc["components"]["schemas"]
    assert components["ToolReturnMessage"]["properties"]["message_type"]["const"] == "tool_return_message"
    assert set(components["ToolCallMessage"]["required"]) == {"id", "date", "tool_call"}
    assert "client_tool_names" not in components["ApprovalRequestMessage"]["properties"]
