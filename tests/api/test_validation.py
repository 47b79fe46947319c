"""Bad inputs get the right 4xx, naming the offending field in ``detail`` and ``errors[].loc``; never a 500.

Bodies the SDK would refuse to build are sent with httpx; the rest go through the SDK.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from letta_client import APIStatusError, Letta
from tests.fakes.fake_llm import FakeLLM
from tests.support import ThreadServer, wait_for_run

MISSING_RUN = f"run-{uuid.uuid4()}"
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def _image(data: str, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "data": data, "media_type": media_type}}


def _user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **extra}


def _check(response: httpx.Response, status: int, loc: list[Any] | None, *words: str) -> dict[str, Any]:
    """The status, a JSON body whose ``detail`` names ``words`` and whose ``errors`` hold ``loc``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body["detail"], str), body
    for word in words:
        assert word in body["detail"], (word, body)
    if loc is not None:
        locs = [e["loc"] for e in body["errors"]]
        assert any(found[: len(loc)] == loc for found in locs), (loc, locs)
    return body


@pytest.fixture
def http(server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def agent_id(server: ThreadServer, handle: str) -> str:
    return server.client().agents.create(model=handle).id


# (request body, the loc it must name (prefix), words the detail must contain)
BAD_ASYNC_BODIES: list[Any] = [
    pytest.param({}, ["body"], ["'messages'", "'input'"], id="neither-messages-nor-input"),
    pytest.param(
        {"input": "x", "messages": [_user("y")]}, ["body"], ["'messages'", "'input'"], id="both-given"
    ),
    pytest.param({"messages": []}, ["body"], ["'messages'"], id="empty-messages"),
    pytest.param({"input": ""}, ["body"], ["'input'"], id="empty-input"),
    pytest.param({"messages": "hello"}, ["body", "messages"], ["messages"], id="messages-not-a-list"),
    pytest.param(
        {"messages": [_user("y") | {"role": "robot"}]},
        ["body", "messages", 0, "message", "role"],
        ["role", "'user'"],
        id="bad-role",
    ),
    pytest.param(
        {"messages": [{"role": "user"}]},
        ["body", "messages", 0, "message", "content"],
        ["content"],
        id="no-content",
    ),
    pytest.param({"messages": [_user([])]}, ["body", "messages", 0], ["content"], id="empty-content-list"),
    pytest.param({"input": "x", "max_steps": 0}, ["body", "max_steps"], ["max_steps"], id="max-steps-0"),
    pytest.param(
        {"input": "x", "max_steps": "lots"}, ["body", "max_steps"], ["max_steps"], id="max-steps-str"
    ),
    pytest.param(
        {"input": "x", "top_logprobs": 21}, ["body", "top_logprobs"], ["top_logprobs"], id="top-logprobs"
    ),
    pytest.param(
        {"input": "x", "callback_url": "ftp://example.com/hook"},
        ["body", "callback_url"],
        ["callback_url"],
        id="callback-ftp",
    ),
    pytest.param(
        {"input": "x", "callback_url": "not a url"},
        ["body", "callback_url"],
        ["callback_url"],
        id="callback-text",
    ),
    pytest.param(
        {"input": [_image("%%% not base64 %%%")]}, ["body", "input"], ["base64"], id="bad-base64-input"
    ),
    pytest.param(
        {"messages": [_user([_image("!!")])]},
        ["body", "messages", 0, "message", "content"],
        ["base64"],
        id="bad-base64-message",
    ),
    pytest.param(
        {"input": [_image(PNG_1PX, "image/bmp")]},
        ["body", "input"],
        ["image/bmp", "media_type"],
        id="media-type",
    ),
    pytest.param(
        {"input": [{"type": "image", "source": {"type": "url", "url": "file:///etc/passwd"}}]},
        ["body", "input"],
        ["url"],
        id="image-url-scheme",
    ),
    pytest.param(
        {"messages": [_user("y") | {"type": "telegram"}]},
        ["body", "messages", 0],
        ["telegram"],
        id="unknown-type",
    ),
    pytest.param(
        {"messages": [_user("a", otid="same"), _user("b", otid="other"), _user("c", otid="same")]},
        ["body", "messages", 2, "otid"],
        ["otid", "same"],
        id="duplicate-otids",
    ),
    pytest.param(
        {"input": "x", "include_return_message_types": ["gossip_message"]},
        ["body", "include_return_message_types", 0],
        ["include_return_message_types"],
        id="bad-message-type-filter",
    ),
    pytest.param(
        {"input": "x", "client_tools": [{"name": "has spaces"}]},
        ["body", "client_tools", 0, "name"],
        ["client_tools"],
        id="bad-client-tool-name",
    ),
    pytest.param(
        {"input": "x", "client_tools": [{"name": "t"}, {"name": "t"}]},
        ["body"],
        ["client_tools"],
        id="duplicate-client-tools",
    ),
    pytest.param(
        {"input": "x", "override_model": "nope/model"},
        ["body", "override_model"],
        ["nope"],
        id="override-model",
    ),
    pytest.param(
        {"messages": [{"type": "tool_return", "tool_returns": []}]},
        ["body", "messages", 0, "tool_return", "tool_returns"],
        ["tool_returns"],
        id="empty-tool-returns",
    ),
]


@pytest.mark.parametrize(("body", "loc", "words"), BAD_ASYNC_BODIES)
def test_bad_create_async_bodies(
    server: ThreadServer,
    http: httpx.Client,
    agent_id: str,
    body: dict[str, Any],
    loc: list[Any],
    words: list[str],
) -> None:
    response = http.post(f"/v1/agents/{agent_id}/messages/async", json=body)
    _check(response, 422, loc, *words)
    if "callback_url" not in body:  # the sync route has no callback, and shares the rest of the checks
        response = http.post(f"/v1/agents/{agent_id}/messages", json=body)
        _check(response, 422, loc, *words)
    assert server.client().runs.list(agent_id=agent_id).items == []


def test_good_image_is_accepted(server: ThreadServer, fake_llm: FakeLLM, model: str, agent_id: str) -> None:
    client = server.client()
    content: list[Any] = [{"type": "text", "text": "what is this?"}, _image(PNG_1PX)]
    run = client.agents.messages.create_async(agent_id=agent_id, input=content)
    assert wait_for_run(client, run.id).status == "completed"
    [request] = fake_llm.requests(model)
    parts = request["messages"][-1]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}}


def test_sdk_sees_422_for_out_of_range_numbers(server: ThreadServer, agent_id: str) -> None:
    client = server.client()
    for kwargs in ({"max_steps": 0}, {"top_logprobs": 21}):
        with pytest.raises(APIStatusError) as info:
            client.agents.messages.create_async(agent_id=agent_id, input="x", **kwargs)  # type: ignore[arg-type]
        assert info.value.status_code == 422
        body = info.value.body
        assert isinstance(body, dict)
        field = next(iter(kwargs))
        assert field in body["detail"] and ["body", field] in [e["loc"] for e in body["errors"]]


def test_malformed_bodies_are_4xx(http: httpx.Client, agent_id: str) -> None:
    url = f"/v1/agents/{agent_id}/messages/async"
    not_json = http.post(url, content=b"{not json", headers={"content-type": "application/json"})
    _check(not_json, 422, ["body"])
    _check(http.post(url, json=["input", "x"]), 422, ["body"])
    _check(http.post(url, json={"input": 42}), 422, ["body", "input"], "input")
    _check(http.post(url, json={"input": [{"type": "text"}]}), 422, ["body", "input"], "text")


@pytest.mark.parametrize(
    "path",
    ["/v1/runs/", "/v1/agents/", "/v1/agents/{agent}/messages", "/v1/agents/{agent}/core-memory/blocks"],
)
@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_list_routes_reject_bad_limits(http: httpx.Client, agent_id: str, path: str, limit: int) -> None:
    response = http.get(path.format(agent=agent_id), params={"limit": limit})
    _check(response, 422, ["query", "limit"], "limit")


def test_list_routes_reject_bad_order(http: httpx.Client, agent_id: str) -> None:
    for path in ("/v1/runs/", f"/v1/agents/{agent_id}/messages"):
        response = http.get(path, params={"order": "sideways"})
        _check(response, 422, ["query", "order"], "order")
    response = http.get("/v1/runs/", params={"stop_reason": "tired"})
    _check(response, 422, ["query", "stop_reason"], "stop_reason")


RUN_ROUTES = [
    ("GET", "/v1/runs/{run}"),
    ("GET", "/v1/runs/{run}/messages"),
    ("GET", "/v1/runs/{run}/usage"),
    ("GET", "/v1/runs/{run}/steps"),
    ("DELETE", "/v1/runs/{run}"),
]


@pytest.mark.parametrize(("method", "path"), RUN_ROUTES)
def test_run_ids(http: httpx.Client, method: str, path: str) -> None:
    for bad in ("run-123", "nope", f"agent-{uuid.uuid4()}"):
        response = http.request(method, path.format(run=bad))
        _check(response, 422, ["path", "run_id"], "run-<uuid4>")
    response = http.request(method, path.format(run=MISSING_RUN))
    _check(response, 404, None, MISSING_RUN)


def test_sdk_run_errors(server: ThreadServer) -> None:
    client = server.client()
    calls = (
        client.runs.retrieve,
        lambda run_id: client.runs.messages.list(run_id).items,
        client.runs.usage.retrieve,
        lambda run_id: client.runs.steps.list(run_id).items,
    )
    for call in calls:
        with pytest.raises(APIStatusError) as info:
            call(MISSING_RUN)
        assert info.value.status_code == 404
        with pytest.raises(APIStatusError) as info:
            call("run-xyz")
        assert info.value.status_code == 422


def test_cancel_validates_run_ids(http: httpx.Client, agent_id: str) -> None:
    url = f"/v1/agents/{agent_id}/messages/cancel"
    _check(http.post(url, json={"run_ids": [MISSING_RUN, "bad"]}), 422, ["body", "run_ids", 1], "run-<uuid4>")
    _check(http.post(url, json={"run_ids": [MISSING_RUN]}), 404, None, MISSING_RUN)
    _check(http.post(url, json={"run_ids": "run-x"}), 422, ["body", "run_ids"])


def test_agent_bodies(http: httpx.Client, handle: str) -> None:
    url = "/v1/agents/"
    _check(http.post(url, json={"model": handle, "name": ""}), 422, ["body", "name"], "name")
    _check(http.post(url, json={"model": handle, "tags": "a"}), 422, ["body", "tags"], "tags")
    _check(
        http.post(url, json={"model": handle, "memory_blocks": [{"label": "h", "value": "xx", "limit": 1}]}),
        422,
        ["body", "memory_blocks", 0, "value"],
        "limit of 1",
    )
    _check(
        http.post(url, json={"model": handle, "memory_blocks": [{"label": "h"}]}),
        422,
        ["body", "memory_blocks", 0, "value"],
    )
    twice = [{"label": "h", "value": "a"}, {"label": "h", "value": "b"}]
    _check(
        http.post(url, json={"model": handle, "memory_blocks": twice}),
        422,
        ["body", "memory_blocks"],
        "unique",
    )
    _check(http.post(url, json={"model": handle, "tools": ["rm_rf"]}), 422, ["body", "tools", 0], "rm_rf")
    _check(
        http.post(url, json={"model": handle, "block_ids": ["blk"]}),
        422,
        ["body", "block_ids", 0],
        "block-<uuid4>",
    )
    _check(
        http.post(url, json={"model": handle, "context_window_limit": 0}),
        422,
        ["body", "context_window_limit"],
    )


def test_block_update_bodies(server: ThreadServer, http: httpx.Client, handle: str) -> None:
    client: Letta = server.client()
    agent = client.agents.create(model=handle, memory_blocks=[{"label": "human", "value": "v", "limit": 10}])
    url = f"/v1/agents/{agent.id}/core-memory/blocks/human"
    _check(http.patch(url, json={"value": "x" * 11}), 422, ["body", "value"], "limit of 10")
    _check(http.patch(url, json={"limit": 0}), 422, ["body", "limit"])
    _check(http.patch(url, json={"value": None}), 422, ["body", "value"], "null")
    _check(http.patch(url, json={"label": ""}), 422, ["body", "label"])
    assert client.agents.blocks.retrieve("human", agent_id=agent.id).value == "v"
