"""Run callbacks: a real HTTP receiver records the POSTs; delivery, retries, failures and signing.

Each test posts to a path of its own on one shared receiver, which answers per path as scripted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from letta_client import Letta
from letta_client.types.agents.run import Run
from sqlalchemy import update
from tests.fakes.callback_receiver import CallbackReceiver
from tests.fakes.fake_llm import FakeLLM, Hang, Text
from tests.support import ThreadServer, free_port, wait_for_run, wait_until

from agenthost.db.database import Database
from agenthost.db.rows import RunRow
from agenthost.db.types import utcnow
from agenthost.settings import Settings


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as recv:
        yield recv


def run_with_callback(
    client: Letta, handle: str, url: str, *, text: str = "hi", **params: Any
) -> tuple[str, Run]:
    agent = client.agents.create(name="callbacks", model=handle)
    run = client.agents.messages.create_async(agent_id=agent.id, input=text, callback_url=url, **params)
    return agent.id, run


def callback_settled(client: Letta, run_id: str, status_code: int | None = None) -> Run:
    """The run once a callback attempt is recorded on it (with ``status_code`` when given)."""

    def recorded() -> Run | None:
        run = client.runs.retrieve(run_id)
        if run.callback_sent_at is None:
            return None
        if status_code is not None and run.callback_status_code != status_code:
            return None
        return run

    run = wait_until(recorded, timeout=10, what=f"a callback attempt recorded on {run_id}")
    assert run is not None
    return run


def test_completed_run_posts_its_filtered_result(
    server: ThreadServer, receiver: CallbackReceiver, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    fake_llm.script(model, Text("all done"))
    url = receiver.url()
    agent_id, run = run_with_callback(client, handle, url, include_return_message_types=["assistant_message"])
    done = wait_for_run(client, run.id)
    assert done.status == "completed"

    [post] = receiver.wait_for(url)
    assert post.headers["content-type"] == "application/json"
    payload = post.json()
    assert payload["run_id"] == run.id and payload["agent_id"] == agent_id
    assert (payload["status"], payload["stop_reason"]) == ("completed", "end_turn")
    assert done.completed_at is not None
    assert datetime.fromisoformat(payload["completed_at"]) == done.completed_at
    result = payload["metadata"]["result"]
    assert [(m["message_type"], m["content"]) for m in result["messages"]] == [
        ("assistant_message", "all done")
    ]
    assert result["stop_reason"]["stop_reason"] == "end_turn"
    assert result["usage"]["total_tokens"] == 15

    settled = callback_settled(client, run.id, 200)
    assert settled.callback_url == url and settled.callback_error is None
    assert settled.callback_sent_at is not None and settled.callback_sent_at >= done.completed_at
    assert (settled.status, settled.stop_reason) == ("completed", "end_turn")


def test_server_errors_are_retried_until_delivered(
    server: ThreadServer, receiver: CallbackReceiver, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    fake_llm.script(model, Text("retry me"))
    url = receiver.url(500, 500, 200)
    _, run = run_with_callback(client, handle, url)
    posts = receiver.wait_for(url, 3)
    settled = callback_settled(client, run.id, 200)
    assert settled.callback_error is None
    assert len(posts) == 3
    assert posts[0].body == posts[1].body == posts[2].body
    assert posts[2].json()["status"] == "completed"


def test_failing_receiver_records_error_and_leaves_run_alone(
    fresh_server: Callable[..., ThreadServer],
    receiver: CallbackReceiver,
    fake_llm: FakeLLM,
    model: str,
    handle: str,
) -> None:
    client = fresh_server(callback_retry_window_s=1.0).client()
    fake_llm.script(model, Text("nobody listens"))
    url = receiver.url(500)
    _, run = run_with_callback(client, handle, url)
    receiver.wait_for(url, 3)  # retried, not given up after one answer
    settled = callback_settled(client, run.id, 500)
    assert settled.callback_error is not None and "500" in settled.callback_error
    assert (settled.status, settled.stop_reason) == ("completed", "end_turn")

    # Delivery stops once the retry window is spent.
    def stopped() -> bool:
        count = len(receiver.posts(url))
        time.sleep(0.5)
        return len(receiver.posts(url)) == count

    wait_until(stopped, timeout=10, what="callback retries to stop")
    assert client.runs.retrieve(run.id).status == "completed"


def test_client_error_answer_is_final(
    server: ThreadServer, receiver: CallbackReceiver, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    fake_llm.script(model, Text("rejected"))
    url = receiver.url(410, 200)
    _, run = run_with_callback(client, handle, url)
    settled = callback_settled(client, run.id, 410)
    assert settled.callback_error is not None and "410" in settled.callback_error
    # A later run's callback to another URL shows the dispatcher moved on; this one was never retried.
    other = receiver.url()
    _, later = run_with_callback(client, handle, other)
    receiver.wait_for(other)
    callback_settled(client, later.id, 200)
    assert len(receiver.posts(url)) == 1


def test_unreachable_url_records_error(
    fresh_server: Callable[..., ThreadServer], fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = fresh_server(callback_retry_window_s=1.0).client()
    fake_llm.script(model, Text("into the void"))
    url = f"http://127.0.0.1:{free_port()}/nobody-home"
    _, run = run_with_callback(client, handle, url)
    settled = callback_settled(client, run.id)
    assert settled.callback_status_code is None
    assert settled.callback_error is not None and "Connect" in settled.callback_error
    assert (settled.status, settled.stop_reason) == ("completed", "end_turn")


def test_signed_callback_verifies(
    fresh_server: Callable[..., ThreadServer],
    receiver: CallbackReceiver,
    fake_llm: FakeLLM,
    model: str,
    handle: str,
) -> None:
    secret = "s3cret-for-tests"
    client = fresh_server(callback_signing_secret=secret).client()
    fake_llm.script(model, Text("signed"))
    url = receiver.url()
    _, run = run_with_callback(client, handle, url)
    [post] = receiver.wait_for(url)
    assert post.headers["x-agenthost-run-id"] == run.id

    fields = dict(part.split("=", 1) for part in post.headers["x-agenthost-signature"].split(","))
    assert set(fields) == {"t", "v1"}
    assert abs(int(fields["t"]) - time.time()) < 60
    signed = fields["t"].encode() + b"." + post.body

    def mac(key: str) -> str:
        return hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()

    assert hmac.compare_digest(fields["v1"], mac(secret))
    assert not hmac.compare_digest(fields["v1"], mac("another secret"))


def test_unsigned_without_secret(
    server: ThreadServer, receiver: CallbackReceiver, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    fake_llm.script(model, Text("plain"))
    url = receiver.url()
    run_with_callback(client, handle, url)
    [post] = receiver.wait_for(url)
    assert "x-agenthost-signature" not in post.headers


def test_cancelled_run_calls_back(
    server: ThreadServer, receiver: CallbackReceiver, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    fake_llm.script(model, Hang())
    url = receiver.url()
    agent_id, run = run_with_callback(client, handle, url)
    fake_llm.wait_for_requests(model, 1)
    assert client.agents.messages.cancel(agent_id) == {run.id: "cancelled"}

    [post] = receiver.wait_for(url)
    payload = post.json()
    assert (payload["run_id"], payload["status"], payload["stop_reason"]) == (
        run.id,
        "cancelled",
        "cancelled",
    )
    assert payload["completed_at"] is not None
    assert payload["metadata"]["result"]["stop_reason"]["stop_reason"] == "cancelled"
    settled = callback_settled(client, run.id, 200)
    assert settled.status == "cancelled"
    # One terminal transition, one callback: the loop leaving the cancelled run sends no second one.
    other = receiver.url()
    fake_llm.script(model, Text("after"))
    later = client.agents.messages.create_async(agent_id=agent_id, input="again", callback_url=other)
    receiver.wait_for(other)
    assert wait_for_run(client, later.id).status == "completed"
    assert len(receiver.posts(url)) == 1


async def _leave_pending(settings: Settings, run_id: str, lease_until: datetime) -> None:
    """Put the run's callback back as a process that died while delivering it leaves it."""
    db = Database(settings.sqlalchemy_url(), pool_size=1)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(callback_pending=True, callback_lease_until=lease_until)
            )
    finally:
        await db.close()


def test_a_callback_left_pending_is_sent_by_the_sweep_once_its_lease_runs_out(
    fresh_server: Callable[..., ThreadServer],
    receiver: CallbackReceiver,
    fake_llm: FakeLLM,
    model: str,
    handle: str,
) -> None:
    srv = fresh_server(callback_sweep_interval_s=0.1)
    client = srv.client()
    fake_llm.script(model, Text("swept"))
    url = receiver.url()
    _, run = run_with_callback(client, handle, url)
    [first] = receiver.wait_for(url)
    callback_settled(client, run.id, 200)

    lease_until = utcnow() + timedelta(seconds=1.5)
    asyncio.run(_leave_pending(srv.settings, run.id, lease_until))
    # Sweeps run every 0.1 s: while the (dead) deliverer's lease holds, none of them sends it.
    time.sleep(0.7)
    assert len(receiver.posts(url)) == 1
    second = receiver.wait_for(url, 2)[1]
    assert utcnow() >= lease_until
    assert second.body == first.body
    # Delivered and recorded: no further sweep sends it again.
    time.sleep(0.5)
    assert len(receiver.posts(url)) == 2
