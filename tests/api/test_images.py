"""Images: stored once as files, reused by file id, sent to the provider as data; bad images are 422s."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from letta_client import Letta
from letta_client.types.agents import UserMessage
from tests.fakes.fake_llm import FakeLLM
from tests.support import ThreadServer, wait_for_run

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def _image(source: dict[str, Any]) -> dict[str, Any]:
    return {"type": "image", "source": source}


def _ask(client: Letta, agent_id: str, *parts: dict[str, Any]) -> str:
    content = [{"type": "text", "text": "what is this?"}, *parts]
    run = client.agents.messages.create_async(agent_id=agent_id, input=content)  # type: ignore[arg-type]
    assert wait_for_run(client, run.id).status == "completed"
    return run.id


def _stored_source(client: Letta, run_id: str) -> dict[str, Any]:
    user = client.runs.messages.list(run_id).items[0]
    assert isinstance(user, UserMessage) and isinstance(user.content, list)
    source = user.content[1].source  # type: ignore[union-attr]
    return source.model_dump()  # type: ignore[no-any-return]


def test_an_image_is_stored_once_and_reused_by_its_file_id(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent_id = client.agents.create(model=handle).id
    run_id = _ask(client, agent_id, _image({"type": "base64", "media_type": "image/png", "data": PNG_1PX}))
    source = _stored_source(client, run_id)
    assert source["type"] == "letta" and source["file_id"].startswith("file-")
    assert source["media_type"] == "image/png" and not source.get("data")

    _ask(client, agent_id, _image({"type": "letta", "file_id": source["file_id"]}))
    data_url = f"data:image/png;base64,{PNG_1PX}"
    last = fake_llm.requests(model)[-1]["messages"]
    images = [
        p["image_url"]["url"]
        for m in last
        if m["role"] == "user" and isinstance(m["content"], list)
        for p in m["content"]
        if p["type"] == "image_url"
    ]
    # The first message's image (from history) and the reused one both reach the model as data.
    assert images == [data_url, data_url]


def test_a_data_url_is_stored_like_base64(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent_id = client.agents.create(model=handle).id
    run_id = _ask(client, agent_id, _image({"type": "url", "url": f"data:image/png;base64,{PNG_1PX}"}))
    assert _stored_source(client, run_id)["type"] == "letta"
    part = fake_llm.requests(model)[-1]["messages"][-1]["content"][1]
    assert part == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}}


@pytest.mark.parametrize(
    ("source", "words"),
    [
        pytest.param({"type": "letta", "file_id": "file-nope"}, ["file-nope"], id="unknown-file"),
        pytest.param(
            {"type": "base64", "media_type": "image/jpeg", "data": PNG_1PX},
            ["not a image/jpeg image"],
            id="data-not-its-media-type",
        ),
        pytest.param({"type": "url", "url": "data:image/png;base64,%%%"}, ["base64"], id="bad-data-url"),
        pytest.param({"type": "url", "url": "data:image/png,raw"}, ["data URL"], id="data-url-not-base64"),
        pytest.param(
            {"type": "url", "url": f"data:image/tiff;base64,{PNG_1PX}"}, ["image/tiff"], id="data-url-type"
        ),
    ],
)
def test_bad_images_are_422_and_start_no_run(
    server: ThreadServer, handle: str, source: dict[str, Any], words: list[str]
) -> None:
    client = server.client()
    agent_id = client.agents.create(model=handle).id
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, _image(source)]}]}
    response = httpx.post(f"{server.base_url}/v1/agents/{agent_id}/messages/async", json=body)
    assert response.status_code == 422, response.text
    for word in words:
        assert word in response.json()["detail"]
    assert client.runs.list(agent_id=agent_id).items == []


def test_a_file_of_another_agent_cannot_be_named(server: ThreadServer, handle: str) -> None:
    client = server.client()
    owner = client.agents.create(model=handle).id
    run_id = _ask(client, owner, _image({"type": "base64", "media_type": "image/png", "data": PNG_1PX}))
    file_id = _stored_source(client, run_id)["file_id"]
    other = client.agents.create(model=handle).id
    body = {"input": [_image({"type": "letta", "file_id": file_id})]}
    response = httpx.post(f"{server.base_url}/v1/agents/{other}/messages/async", json=body)
    assert response.status_code == 422 and file_id in response.text
