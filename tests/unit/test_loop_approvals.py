"""Server-side tools that need a human's approval, as the loop decides them: the run pauses, and an
approval or denial resumes it.

The guarded tool is a fake runner's callable, so ``runner.calls`` proves whether (and with what) it
ran. ``tests/api/test_approvals.py`` keeps the wire side: adopting and switching the rule through the
API, the PENDING_APPROVAL conflict at request time, a partial answer refused up front, cancel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.unit.loop_support import MODEL, FakeRunner, Harness, custom

from agenthost.llm.base import LLMRequest, LLMResponse
from agenthost.llm.scripted import ScriptedLLM, text, tool_calls
from agenthost.thread import Thread

TAG_PARAMETER = {"type": "object", "properties": {"tag": {"type": "string"}}, "required": ["tag"]}


def _mark(tag: str) -> str:
    return "ran " + tag


def _harness(
    guarded: Sequence[str],
    free: Sequence[str] = (),
    *script: LLMResponse,
    rules: Sequence[dict[str, Any]] = (),
) -> tuple[Harness, str]:
    """An agent whose ``guarded`` tools need approval and whose ``free`` tools do not."""
    names = [*guarded, *free]
    h = Harness(ScriptedLLM(script), FakeRunner(dict.fromkeys(names, _mark)))
    approval = [{"type": "requires_approval", "tool_name": name} for name in guarded]
    tools = [custom(name, parameters=TAG_PARAMETER) for name in names]
    return h, h.store.add_agent(MODEL, tools=tools, tool_rules=[*approval, *rules])


def _answer(*approvals: dict[str, Any]) -> dict[str, Any]:
    return {"type": "approval", "approvals": list(approvals)}


def _approve(call_id: str) -> dict[str, Any]:
    return {"type": "approval", "tool_call_id": call_id, "approve": True}


def _deny(call_id: str, reason: str | None = None) -> dict[str, Any]:
    return {"type": "approval", "tool_call_id": call_id, "approve": False, "reason": reason}


def _pending(h: Harness, agent: str) -> str | None:
    return h.store.threads[Thread(agent)].pending_approval_id


def _request(h: Harness, run_id: str) -> tuple[str, list[str]]:
    """The run's approval request: its id and the ids of the calls it holds."""
    (request,) = [
        m for m in h.store.messages if m.run_id == run_id and m.message_type == "approval_request_message"
    ]
    return request.id, [c["tool_call_id"] for c in request.body["tool_calls"]]


def _returns(h: Harness, run_id: str) -> dict[str, tuple[str, str]]:
    """The run's tool returns by call id: (status, text)."""
    return {
        m.body["tool_call_id"]: (m.body["status"], m.body["tool_return"])
        for m in h.store.messages
        if m.run_id == run_id and m.message_type == "tool_return_message"
    }


def _tool_messages(request: LLMRequest) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in request.messages if m["role"] == "tool"}


def _asked_ids(request: LLMRequest) -> list[str]:
    (asked,) = [m for m in request.messages if m.get("tool_calls")]
    return [c["id"] for c in asked["tool_calls"]]


async def test_an_approved_call_runs_and_the_llm_sees_its_return() -> None:
    h, agent = _harness(["guarded"], [], tool_calls(("guarded", {"tag": "approved"})))
    paused = await h.run(agent, input="go")
    assert h.outcome(paused) == ("completed", "requires_approval")
    request_id, held = _request(h, paused)
    assert held == ["call-1"] and _pending(h, agent) == request_id
    assert h.runner.calls == []

    h.llm.script(text("it ran"))
    done = await h.run(agent, inputs=[{**_answer(_approve("call-1")), "approval_request_id": request_id}])
    assert h.outcome(done) == ("completed", "end_turn")
    assert h.runner.calls == [("guarded", {"tag": "approved"})]
    assert h.kinds(done) == ["approval_response_message", "tool_return_message", "assistant_message"]
    assert _returns(h, done) == {"call-1": ("success", "ran approved")}
    assert _tool_messages(h.llm.requests[-1]) == {"call-1": "ran approved"}
    assert _asked_ids(h.llm.requests[-1]) == ["call-1"]
    assert _pending(h, agent) is None


async def test_a_denied_call_never_runs_and_the_llm_sees_the_reason() -> None:
    h, agent = _harness(["guarded"], [], tool_calls(("guarded", {"tag": "denied"})), text("understood"))
    await h.run(agent, input="go")
    done = await h.run(agent, inputs=[_answer(_deny("call-1", "not on a Friday"))])
    assert h.outcome(done) == ("completed", "end_turn")
    assert h.runner.calls == []
    ((status, reason),) = _returns(h, done).values()
    assert status == "error" and "not on a Friday" in reason
    (denied,) = [m for m in h.store.messages if m.message_type == "tool_return_message"]
    assert denied.is_err and denied.body["tool_call_id"] == "call-1"
    seen = _tool_messages(h.llm.requests[-1])
    assert list(seen) == ["call-1"]
    assert "denied" in seen["call-1"] and "not on a Friday" in seen["call-1"]
    assert _pending(h, agent) is None


async def test_a_plain_message_while_an_approval_is_pending_fails_the_run() -> None:
    h, agent = _harness(["guarded"], [], tool_calls(("guarded", {"tag": "x"})))
    paused = await h.run(agent, input="go")
    request_id, _ = _request(h, paused)
    blocked = await h.run(agent, input="hello?")
    assert h.outcome(blocked) == ("failed", "error")
    error = str(h.store.runs[blocked].error)
    assert "PENDING_APPROVAL" in error and request_id in error
    # Nothing moved: the request is still pending, the LLM was not asked again, nothing ran.
    assert _pending(h, agent) == request_id
    assert len(h.llm.requests) == 1
    assert h.runner.calls == []
    assert h.kinds(blocked) == []


async def test_several_pending_calls_are_answered_together() -> None:
    both = tool_calls(("guarded", {"tag": "yes"}), ("guarded", {"tag": "no"}))
    h, agent = _harness(["guarded"], [], both, text("one of two"))
    paused = await h.run(agent, input="go")
    assert _request(h, paused)[1] == ["call-1", "call-2"]

    done = await h.run(agent, inputs=[_answer(_approve("call-1"), _deny("call-2", "only one"))])
    assert h.outcome(done) == ("completed", "end_turn")
    assert h.runner.calls == [("guarded", {"tag": "yes"})]
    returns = _returns(h, done)
    assert returns["call-1"] == ("success", "ran yes")
    assert returns["call-2"][0] == "error" and "only one" in returns["call-2"][1]
    assert _tool_messages(h.llm.requests[-1]) == {"call-1": "ran yes", "call-2": returns["call-2"][1]}
    assert _pending(h, agent) is None


async def test_the_legacy_single_approve_answers_every_pending_call() -> None:
    both = tool_calls(("guarded", {"tag": "one"}), ("guarded", {"tag": "two"}))
    h, agent = _harness(["guarded"], [], both, text("both ran"))
    paused = await h.run(agent, input="go")
    request_id, _ = _request(h, paused)
    done = await h.run(
        agent, inputs=[{"type": "approval", "approve": True, "approval_request_id": request_id}]
    )
    assert h.outcome(done) == ("completed", "end_turn")
    assert h.runner.calls == [("guarded", {"tag": "one"}), ("guarded", {"tag": "two"})]
    assert _returns(h, done) == {"call-1": ("success", "ran one"), "call-2": ("success", "ran two")}


async def test_a_free_tool_runs_at_once_while_a_guarded_one_waits() -> None:
    mixed = tool_calls(("guarded", {"tag": "held"}), ("free", {"tag": "ran"}))
    h, agent = _harness(["guarded"], ["free"], mixed)
    paused = await h.run(agent, input="go")
    assert h.outcome(paused) == ("completed", "requires_approval")
    assert _request(h, paused)[1] == ["call-1"]
    assert h.runner.calls == [("free", {"tag": "ran"})]
    assert _returns(h, paused) == {"call-2": ("success", "ran ran")}

    h.llm.script(text("both done"))
    done = await h.run(agent, inputs=[_answer(_approve("call-1"))])
    assert h.outcome(done) == ("completed", "end_turn")
    assert h.runner.calls[-1] == ("guarded", {"tag": "held"})
    last = h.llm.requests[-1]
    # Both calls of the one response stay together in the LLM's history, each with its return.
    assert sorted(_asked_ids(last)) == ["call-1", "call-2"]
    assert _tool_messages(last) == {"call-1": "ran held", "call-2": "ran ran"}


async def test_an_approved_exit_loop_tool_ends_the_run_without_asking_the_llm() -> None:
    rules = [{"type": "exit_loop", "tool_name": "guarded"}]
    script = [tool_calls(("guarded", {"tag": "last"})), text("never asked for")]
    h, agent = _harness(["guarded"], [], *script, rules=rules)
    await h.run(agent, input="go")
    done = await h.run(agent, inputs=[_answer(_approve("call-1"))])
    assert h.outcome(done) == ("completed", "tool_rule")
    assert h.runner.calls == [("guarded", {"tag": "last"})]
    assert len(h.llm.requests) == 1
    assert h.kinds(done) == ["approval_response_message", "tool_return_message"]
