"""Client-side tools: the run pauses for the client (requires_approval) and resumes with the tool's result.

Covers both ways of answering (a ``tool_return`` message, an approval holding tool returns), the
PENDING_APPROVAL conflict, answering several calls together, denial, and cancel closing the request.
"""

from __future__ import annotations

from typing import Any

import pytest
from letta_client import ConflictError, Letta, UnprocessableEntityError
from letta_client.types import ToolReturnMessage
from letta_client.types.agents import ApprovalRequestMessage
from letta_client.types.agents import ToolCall as SdkToolCall
from letta_client.types.agents.run import Run
from tests.fakes.fake_llm import FakeLLM, Text, ToolCall, ToolCalls
from tests.support import CALCULATOR, ThreadServer, async_wait_for_run, wait_for_run


def _pause(client: Letta, fake_llm: FakeLLM, model: str, agent_id: str, *calls: ToolCall) -> str:
    """A run whose LLM calls client tools; returns the id of the approval request it ends with."""
    fake_llm.script(model, ToolCalls(list(calls)))
    run = client.agents.messages.create_async(agent_id=agent_id, input="compute", client_tools=[CALCULATOR])
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "requires_approval")
    (request,) = [
        m for m in client.runs.messages.list(run.id).items if m.message_type == "approval_request_message"
    ]
    return request.id


def _tool_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["messages"] if m["role"] == "tool"]


def test_client_tool_call_pauses_the_run(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="client-tool", model=handle)
    call = ToolCall("calculator", {"expression": "6*7"})
    fake_llm.script(model, call)
    run = client.agents.messages.create_async(
        agent_id=agent.id, input="what is 6*7?", client_tools=[CALCULATOR]
    )
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "requires_approval")
    (request,) = fake_llm.requests(model)
    assert "calculator" in [t["function"]["name"] for t in request["tools"]]

    messages = client.runs.messages.list(run.id).items
    assert [m.message_type for m in messages] == ["user_message", "approval_request_message"]
    approval = messages[1]
    assert isinstance(approval, ApprovalRequestMessage) and isinstance(approval.tool_call, SdkToolCall)
    assert (approval.tool_call.name, approval.tool_call.tool_call_id) == ("calculator", call.id)
    assert '"6*7"' in approval.tool_call.arguments

    state = client.agents.retrieve(agent.id, include=["agent.pending_approval"])
    assert state.pending_approval is not None and state.pending_approval.id == approval.id

    with pytest.raises(ConflictError) as conflict:
        client.agents.messages.create_async(agent_id=agent.id, input="never mind")
    assert conflict.value.status_code == 409
    body: Any = conflict.value.body
    assert body["code"] == "PENDING_APPROVAL"
    assert body["pending_request_id"] == approval.id
    assert approval.id in body["detail"]
    with pytest.raises(ConflictError):
        client.agents.messages.create(agent.id, input="sync is blocked too")


def test_resume_with_tool_return_message(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="resume", model=handle)
    call = ToolCall("calculator", {"expression": "6*7"})
    _pause(client, fake_llm, model, agent.id, call)
    fake_llm.script(model, Text("the answer is 42"))
    run = client.agents.messages.create_async(
        agent_id=agent.id,
        messages=[
            {
                "type": "tool_return",
                "tool_returns": [{"tool_call_id": call.id or "", "status": "success", "tool_return": "42"}],
            }
        ],
        client_tools=[CALCULATOR],
    )
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    request = fake_llm.requests(model)[-1]
    assert _tool_messages(request) == [{"role": "tool", "tool_call_id": call.id, "content": "42"}]
    calling = [m for m in request["messages"] if m.get("tool_calls")]
    assert [c["id"] for c in calling[-1]["tool_calls"]] == [call.id]
    kinds = [m.message_type for m in client.runs.messages.list(run.id).items]
    assert kinds == ["approval_response_message", "tool_return_message", "assistant_message"]
    assert client.agents.retrieve(agent.id, include=["agent.pending_approval"]).pending_approval is None


async def test_resume_with_approval_holding_tool_return(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.async_client()
    agent = await client.agents.create(name="approval-tool", model=handle)
    call = ToolCall("calculator", {"expression": "40+2"})
    fake_llm.script(model, call, Text("done"))
    paused = await client.agents.messages.create_async(
        agent_id=agent.id, input="add", client_tools=[CALCULATOR]
    )
    assert (await async_wait_for_run(client, paused.id)).stop_reason == "requires_approval"
    run = await client.agents.messages.create_async(
        agent_id=agent.id,
        messages=[
            {
                "type": "approval",
                "approvals": [
                    {"type": "tool", "tool_call_id": call.id or "", "status": "success", "tool_return": "42"}
                ],
            }
        ],
    )
    done = await async_wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _tool_messages(fake_llm.requests(model)[-1]) == [
        {"role": "tool", "tool_call_id": call.id, "content": "42"}
    ]


def test_parallel_client_calls_must_be_answered_together(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="parallel", model=handle)
    first, second = (
        ToolCall("calculator", {"expression": "1+1"}),
        ToolCall("calculator", {"expression": "2+2"}),
    )
    request_id = _pause(client, fake_llm, model, agent.id, first, second)
    approval = client.agents.retrieve(agent.id, include=["agent.pending_approval"]).pending_approval
    assert approval is not None and approval.id == request_id
    assert isinstance(approval.tool_calls, list)
    assert [c.tool_call_id for c in approval.tool_calls] == [first.id, second.id]

    def answer(*pairs: tuple[ToolCall, str]) -> Run:
        returns: Any = [{"tool_call_id": c.id, "status": "success", "tool_return": v} for c, v in pairs]
        return client.agents.messages.create_async(
            agent_id=agent.id, messages=[{"type": "tool_return", "tool_returns": returns}]
        )

    with pytest.raises(UnprocessableEntityError) as partial:
        answer((first, "2"))
    assert partial.value.status_code == 422
    assert str(second.id) in str(partial.value.body)
    fake_llm.script(model, Text("2 and 4"))
    done = wait_for_run(client, answer((first, "2"), (second, "4")).id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert _tool_messages(fake_llm.requests(model)[-1]) == [
        {"role": "tool", "tool_call_id": first.id, "content": "2"},
        {"role": "tool", "tool_call_id": second.id, "content": "4"},
    ]


def test_unknown_tool_call_id_is_rejected(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="wrong-id", model=handle)
    _pause(client, fake_llm, model, agent.id, ToolCall("calculator", {"expression": "1"}))
    with pytest.raises(UnprocessableEntityError) as wrong:
        client.agents.messages.create_async(
            agent_id=agent.id,
            messages=[
                {
                    "type": "tool_return",
                    "tool_returns": [{"tool_call_id": "call_nope", "status": "success", "tool_return": "1"}],
                }
            ],
        )
    assert "call_nope" in str(wrong.value.body)


def test_deny_gives_the_llm_an_error_with_the_reason(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="deny", model=handle)
    call = ToolCall("calculator", {"expression": "rm -rf /"})
    _pause(client, fake_llm, model, agent.id, call)
    fake_llm.script(model, Text("understood"))
    run = client.agents.messages.create_async(
        agent_id=agent.id,
        messages=[
            {
                "type": "approval",
                "approvals": [
                    {"type": "approval", "tool_call_id": call.id or "", "approve": False, "reason": "no"}
                ],
            }
        ],
    )
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    (tool,) = _tool_messages(fake_llm.requests(model)[-1])
    assert tool["tool_call_id"] == call.id
    assert "denied" in tool["content"] and "no" in tool["content"]
    returns = [m for m in client.runs.messages.list(run.id).items if isinstance(m, ToolReturnMessage)]
    assert [(m.status, m.is_err) for m in returns] == [("error", True)]


def test_cancel_closes_a_pending_approval(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="cancel-approval", model=handle)
    call = ToolCall("calculator", {"expression": "9*9"})
    _pause(client, fake_llm, model, agent.id, call)
    client.agents.messages.cancel(agent.id)
    assert client.agents.retrieve(agent.id, include=["agent.pending_approval"]).pending_approval is None

    fake_llm.script(model, Text("fresh start"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="something else")
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    # The unanswered call was closed with an error return, so the LLM context stays valid.
    (tool,) = _tool_messages(fake_llm.requests(model)[-1])
    assert tool["tool_call_id"] == call.id
    assert fake_llm.requests(model)[-1]["messages"][-1] == {"role": "user", "content": "something else"}
    # Answering the closed request is no longer possible.
    with pytest.raises(UnprocessableEntityError):
        client.agents.messages.create_async(
            agent_id=agent.id,
            messages=[
                {
                    "type": "tool_return",
                    "tool_returns": [
                        {"tool_call_id": call.id or "", "status": "success", "tool_return": "81"}
                    ],
                }
            ],
        )
