"""Server-side tools that need a human's approval, over the wire: the run pauses, and an approval resumes it.

The guarded tool writes a marker file when (and only when) it runs, so a test can prove whether it
ran. Covers the tool's ``default_requires_approval``, the per-agent switch, an approve round trip over
HTTP with the real sandbox, a partial answer refused up front, the PENDING_APPROVAL conflict, cancel,
the legacy single approve, and detaching. The loop's decisions (denials, held and free calls in one
response, an approved exit_loop tool) are tested on the loop itself in
``tests/unit/test_loop_approvals.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from letta_client import Letta, UnprocessableEntityError
from letta_client.types.agents import ApprovalRequestMessage
from tests.fakes.fake_llm import FakeLLM, Text, ToolCall, ToolCalls
from tests.support import ThreadServer, api_error, wait_for_run

# The sandbox starts a process per call.
RUN_TIMEOUT = 60.0


def _marking_tool(client: Letta, label: str = "guarded", **kwargs: Any) -> str:
    """A custom tool that writes the file ``$MARK_DIR/<tag>`` and returns ``ran <tag>``."""
    name = f"{label}_{uuid.uuid4().hex[:8]}"
    client.tools.create(
        source_code=f'''
import os

def {name}(tag: str) -> str:
    """Marks that it ran.

    Args:
        tag: The marker's name.
    """
    open(os.path.join(os.environ["MARK_DIR"], tag), "w").close()
    return "ran " + tag
''',
        **kwargs,
    )
    return name


def _agent(client: Letta, handle: str, tools: list[str], marks: Path, rules: Any = None) -> str:
    agent = client.agents.create(
        model=handle,
        tools=tools,
        include_base_tools=False,
        tool_exec_environment_variables={"MARK_DIR": str(marks)},
        tool_rules=rules or [],
    )
    return agent.id


def _send(client: Letta, agent_id: str, text: str = "go") -> Any:
    run = client.agents.messages.create_async(agent_id=agent_id, input=text)
    return wait_for_run(client, run.id, timeout=RUN_TIMEOUT)


def _answer(client: Letta, agent_id: str, *approvals: dict[str, Any]) -> Any:
    messages: Any = [{"type": "approval", "approvals": list(approvals)}]
    run = client.agents.messages.create_async(agent_id=agent_id, messages=messages)
    return wait_for_run(client, run.id, timeout=RUN_TIMEOUT)


def _approve(call: ToolCall) -> dict[str, Any]:
    return {"type": "approval", "tool_call_id": call.id, "approve": True}


def _deny(call: ToolCall, reason: str | None = None) -> dict[str, Any]:
    return {"type": "approval", "tool_call_id": call.id, "approve": False, "reason": reason}


def _kinds(client: Letta, run_id: str) -> list[str]:
    return [str(m.message_type) for m in client.runs.messages.list(run_id).items]


def _returns(client: Letta, run_id: str) -> list[Any]:
    return [m for m in client.runs.messages.list(run_id).items if m.message_type == "tool_return_message"]


def _tool_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["messages"] if m["role"] == "tool"]


def _pending(client: Letta, agent_id: str) -> ApprovalRequestMessage | None:
    return client.agents.retrieve(agent_id, include=["agent.pending_approval"]).pending_approval


def _paused_on(client: Letta, run: Any, *calls: ToolCall) -> ApprovalRequestMessage:
    """Assert the run stopped for approval of exactly ``calls``; return the pending request."""
    assert (run.status, run.stop_reason) == ("completed", "requires_approval")
    (request,) = [
        m for m in client.runs.messages.list(run.id).items if m.message_type == "approval_request_message"
    ]
    assert isinstance(request, ApprovalRequestMessage)
    assert isinstance(request.tool_calls, list)
    assert [(c.tool_call_id, c.name) for c in request.tool_calls] == [(c.id, c.name) for c in calls]
    pending = _pending(client, run.agent_id)
    assert pending is not None and pending.id == request.id
    return request


def test_default_requires_approval_is_adopted_on_attach(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    guarded = _marking_tool(client, default_requires_approval=True)
    agent_id = _agent(client, handle, [guarded], tmp_path)
    rules = client.agents.retrieve(agent_id).tool_rules or []
    assert [(r.type, r.tool_name) for r in rules] == [("requires_approval", guarded)]

    call = ToolCall(guarded, {"tag": "t1"})
    fake_llm.script(model, call, Text("never asked for"))
    done = _send(client, agent_id)
    request = _paused_on(client, done, call)
    assert request.tool_call is not None and '"t1"' in str(request.tool_call)
    assert _kinds(client, done.id) == ["user_message", "approval_request_message"]
    assert len(fake_llm.requests(model)) == 1
    assert not (tmp_path / "t1").exists()

    # Attaching the same tool later (by id) adopts the default as well.
    other_id = _agent(client, handle, [], tmp_path)
    tool_id = next(t.id for t in client.agents.retrieve(agent_id, include=["agent.tools"]).tools)
    attached = client.agents.tools.attach(tool_id, agent_id=other_id)
    assert attached is not None
    assert [(r.type, r.tool_name) for r in attached.tool_rules or []] == [("requires_approval", guarded)]


def test_update_approval_switches_it_per_agent(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    guarded = _marking_tool(client)
    strict_id = _agent(client, handle, [guarded], tmp_path)
    other_model = f"{model}-lax"
    lax_id = _agent(client, f"openai/{other_model}", [guarded], tmp_path)

    state = client.agents.tools.update_approval(guarded, agent_id=strict_id, body_requires_approval=True)
    assert state is not None
    assert [(r.type, r.tool_name) for r in state.tool_rules or []] == [("requires_approval", guarded)]
    assert client.agents.retrieve(lax_id).tool_rules == []

    strict_call = ToolCall(guarded, {"tag": "strict"})
    fake_llm.script(model, strict_call)
    _paused_on(client, _send(client, strict_id), strict_call)
    assert not (tmp_path / "strict").exists()

    fake_llm.script(other_model, ToolCall(guarded, {"tag": "lax"}), Text("done"))
    lax = _send(client, lax_id)
    assert (lax.status, lax.stop_reason) == ("completed", "end_turn")
    assert (tmp_path / "lax").exists()

    # Switched off again: the rule is gone and the next call runs at once.
    client.agents.messages.cancel(strict_id)
    state = client.agents.tools.update_approval(guarded, agent_id=strict_id, body_requires_approval=False)
    assert state is not None and state.tool_rules == []
    fake_llm.script(model, ToolCall(guarded, {"tag": "free-now"}), Text("done"))
    free = _send(client, strict_id)
    assert (free.status, free.stop_reason) == ("completed", "end_turn")
    assert (tmp_path / "free-now").exists()

    # A tool that is not attached has no approval setting to change.
    api_error(
        lambda: client.agents.tools.update_approval(
            "not_attached", agent_id=strict_id, body_requires_approval=True
        ),
        404,
    )


def test_approve_runs_the_tool_and_the_llm_sees_its_return(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    guarded = _marking_tool(client, default_requires_approval=True)
    agent_id = _agent(client, handle, [guarded], tmp_path)
    call = ToolCall(guarded, {"tag": "approved"})
    fake_llm.script(model, call)
    request = _paused_on(client, _send(client, agent_id), call)

    fake_llm.script(model, Text("it ran"))
    done = _answer(client, agent_id, {**_approve(call), "approval_request_id": request.id})
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert (tmp_path / "approved").exists()
    assert _kinds(client, done.id) == [
        "approval_response_message",
        "tool_return_message",
        "assistant_message",
    ]
    (ret,) = _returns(client, done.id)
    assert (ret.tool_call_id, ret.status, ret.tool_return) == (call.id, "success", "ran approved")

    second = fake_llm.requests(model)[-1]
    assert _tool_messages(second) == [{"role": "tool", "tool_call_id": call.id, "content": "ran approved"}]
    (asked,) = [m for m in second["messages"] if m.get("tool_calls")]
    assert [c["id"] for c in asked["tool_calls"]] == [call.id]
    assert _pending(client, agent_id) is None


def test_several_pending_calls_are_answered_together(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    guarded = _marking_tool(client, default_requires_approval=True)
    agent_id = _agent(client, handle, [guarded], tmp_path)
    yes, no = ToolCall(guarded, {"tag": "yes"}), ToolCall(guarded, {"tag": "no"})
    fake_llm.script(model, ToolCalls([yes, no]))
    request = _paused_on(client, _send(client, agent_id), yes, no)

    # Answering only one of them is refused up front, naming the one left out; nothing changes.
    messages: Any = [{"type": "approval", "approvals": [_approve(yes)]}]
    with pytest.raises(UnprocessableEntityError) as partial:
        client.agents.messages.create_async(agent_id=agent_id, messages=messages)
    assert str(no.id) in str(partial.value.body)
    pending = _pending(client, agent_id)
    assert pending is not None and pending.id == request.id
    assert not (tmp_path / "yes").exists()

    fake_llm.script(model, Text("one of two"))
    done = _answer(client, agent_id, _approve(yes), _deny(no, "only one"))
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert (tmp_path / "yes").exists() and not (tmp_path / "no").exists()
    returns = {r.tool_call_id: (r.status, r.tool_return) for r in _returns(client, done.id)}
    assert returns[yes.id] == ("success", "ran yes")
    assert returns[no.id][0] == "error" and "only one" in returns[no.id][1]
    seen = {m["tool_call_id"]: m["content"] for m in _tool_messages(fake_llm.requests(model)[-1])}
    assert seen == {yes.id: "ran yes", no.id: returns[no.id][1]}
    assert _pending(client, agent_id) is None


def test_a_plain_message_while_pending_is_a_conflict(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    guarded = _marking_tool(client, default_requires_approval=True)
    agent_id = _agent(client, handle, [guarded], tmp_path)
    call = ToolCall(guarded, {"tag": "x"})
    fake_llm.script(model, call)
    request = _paused_on(client, _send(client, agent_id), call)

    body = api_error(lambda: client.agents.messages.create_async(agent_id=agent_id, input="hello?"), 409)
    assert body["code"] == "PENDING_APPROVAL"
    assert body["pending_request_id"] == request.id
    assert request.id in body["detail"]
    sync = api_error(lambda: client.agents.messages.create(agent_id, input="hello?"), 409)
    assert sync["code"] == "PENDING_APPROVAL"
    # Nothing was queued: the request is still the pending one, the LLM was not asked again.
    pending = _pending(client, agent_id)
    assert pending is not None and pending.id == request.id
    assert len(fake_llm.requests(model)) == 1


def test_cancel_closes_the_pending_approval(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    guarded = _marking_tool(client, default_requires_approval=True)
    agent_id = _agent(client, handle, [guarded], tmp_path)
    call = ToolCall(guarded, {"tag": "cancelled"})
    fake_llm.script(model, call)
    _paused_on(client, _send(client, agent_id), call)

    client.agents.messages.cancel(agent_id)
    assert _pending(client, agent_id) is None

    fake_llm.script(model, Text("moving on"))
    done = _send(client, agent_id, "something else")
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert not (tmp_path / "cancelled").exists()
    last = fake_llm.requests(model)[-1]
    (closed,) = _tool_messages(last)
    assert closed["tool_call_id"] == call.id
    assert last["messages"][-1] == {"role": "user", "content": "something else"}
    # The closed request can no longer be approved.
    messages: Any = [{"type": "approval", "approvals": [_approve(call)]}]
    with pytest.raises(UnprocessableEntityError):
        client.agents.messages.create_async(agent_id=agent_id, messages=messages)
    assert not (tmp_path / "cancelled").exists()


def test_the_legacy_single_approve_answers_every_pending_call(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    guarded = _marking_tool(client, default_requires_approval=True)
    agent_id = _agent(client, handle, [guarded], tmp_path)
    one, two = ToolCall(guarded, {"tag": "one"}), ToolCall(guarded, {"tag": "two"})
    fake_llm.script(model, ToolCalls([one, two]))
    request = _paused_on(client, _send(client, agent_id), one, two)

    fake_llm.script(model, Text("both ran"))
    messages: Any = [{"type": "approval", "approve": True, "approval_request_id": request.id}]
    run = client.agents.messages.create_async(agent_id=agent_id, messages=messages)
    done = wait_for_run(client, run.id, timeout=RUN_TIMEOUT)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert (tmp_path / "one").exists() and (tmp_path / "two").exists()
    assert [(r.tool_call_id, r.status) for r in _returns(client, done.id)] == [
        (one.id, "success"),
        (two.id, "success"),
    ]


def test_detaching_the_tool_drops_its_approval_rule(
    server: ThreadServer, handle: str, tmp_path: Path
) -> None:
    client = server.client()
    guarded = _marking_tool(client, default_requires_approval=True)
    agent_id = _agent(client, handle, [guarded], tmp_path)
    tool_id = next(t.id for t in client.agents.retrieve(agent_id, include=["agent.tools"]).tools)
    detached = client.agents.tools.detach(tool_id, agent_id=agent_id)
    assert detached is not None and detached.tool_rules == []
