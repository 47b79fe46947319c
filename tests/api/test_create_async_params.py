"""Every create_async parameter is accepted and honoured, and completed runs carry Letta's run fields.

Each test checks the effect where it is observable: the LLM request the fake received, the run row
(``request_config``, ``callback_url``), the messages returned for the run, or the agent afterwards.
"""

from __future__ import annotations

import re

import pytest
from letta_client import UnprocessableEntityError
from letta_client.types.agents import AssistantMessage
from letta_client.types.agents.message_create_async_params import ClientSkill
from tests.fakes.fake_llm import FakeLLM, Text, ToolCall
from tests.support import UUID4, ThreadServer, async_wait_for_run, unique_model, wait_for_run


def test_max_steps_bounds_the_loop(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="max-steps", model=handle)
    fake_llm.set_default(model, ToolCall("conversation_search", {"query": "again"}))  # never ends the turn
    run = client.agents.messages.create_async(agent_id=agent.id, input="loop forever", max_steps=3)
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "max_steps")
    assert len(fake_llm.requests(model)) == 3
    assert len(client.runs.steps.list(run.id).items) == 3


async def test_include_return_message_types_is_stored_and_applied(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.async_client()
    agent = await client.agents.create(name="types", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "x"}), Text("final"))
    run = await client.agents.messages.create_async(
        agent_id=agent.id, input="hi", include_return_message_types=["assistant_message", "tool_call_message"]
    )
    assert run.request_config is not None
    assert run.request_config.include_return_message_types == ["assistant_message", "tool_call_message"]
    await async_wait_for_run(client, run.id)
    shown = (await client.runs.messages.list(run.id)).items
    assert [m.message_type for m in shown] == ["tool_call_message", "assistant_message"]
    stored = await client.runs.retrieve(run.id)
    assert stored.request_config is not None
    assert stored.request_config.include_return_message_types == ["assistant_message", "tool_call_message"]

    fake_llm.script(model, ToolCall("conversation_search", {"query": "y"}), Text("sync final"))
    response = await client.agents.messages.create(
        agent.id, input="again", include_return_message_types=["tool_return_message"]
    )
    assert [m.message_type for m in response.messages] == ["tool_return_message"]


def test_override_model_is_for_this_request_only(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="override-model", model=handle)
    other = unique_model()
    fake_llm.script(other, Text("from the other model"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi", override_model=f"openai/{other}")
    assert wait_for_run(client, run.id).status == "completed"
    assert fake_llm.requests(model) == []
    (request,) = fake_llm.requests(other)
    assert request["model"] == other
    (step,) = client.runs.steps.list(run.id).items
    assert step.model == other
    assert client.agents.retrieve(agent.id).model == handle

    run = client.agents.messages.create_async(agent_id=agent.id, input="and now?")
    assert wait_for_run(client, run.id).status == "completed"
    assert len(fake_llm.requests(model)) == 1
    assert len(fake_llm.requests(other)) == 1


def test_override_model_with_unknown_provider_is_rejected(server: ThreadServer, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="override-bad", model=handle)
    with pytest.raises(UnprocessableEntityError) as caught:
        client.agents.messages.create_async(
            agent_id=agent.id, input="hi", override_model="nowhere/some-model"
        )
    assert caught.value.status_code == 422
    assert "nowhere" in str(caught.value.body)
    assert client.runs.list(agent_id=agent.id).items == []


def test_override_system_is_for_this_request_only(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(
        name="override-system", model=handle, system="The agent's own system prompt."
    )
    run = client.agents.messages.create_async(
        agent_id=agent.id, input="hi", override_system="You are a pirate."
    )
    assert wait_for_run(client, run.id).status == "completed"
    (request,) = fake_llm.requests(model)
    assert request["messages"][0] == {"role": "system", "content": "You are a pirate."}
    assert client.agents.retrieve(agent.id).system == "The agent's own system prompt."

    run = client.agents.messages.create_async(agent_id=agent.id, input="again")
    wait_for_run(client, run.id)
    system = fake_llm.requests(model)[1]["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("The agent's own system prompt.")


def test_assistant_message_settings(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="assistant-tool", model=handle)
    fake_llm.script(model, ToolCall("reply", {"text": "said through reply"}))
    run = client.agents.messages.create_async(
        agent_id=agent.id,
        input="hi",
        assistant_message_tool_name="reply",
        assistant_message_tool_kwarg="text",
    )
    done = wait_for_run(client, run.id)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert done.request_config is not None
    config = done.request_config
    assert (config.assistant_message_tool_name, config.assistant_message_tool_kwarg) == ("reply", "text")
    assert config.use_assistant_message is True
    shown = client.runs.messages.list(run.id).items
    assert [m.content for m in shown if isinstance(m, AssistantMessage)] == ["said through reply"]


def test_use_assistant_message_false(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="raw-calls", model=handle)
    fake_llm.script(model, ToolCall("send_message", {"message": "raw"}))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi", use_assistant_message=False)
    done = wait_for_run(client, run.id)
    assert done.request_config is not None and done.request_config.use_assistant_message is False
    kinds = [m.message_type for m in client.runs.messages.list(run.id).items]
    assert kinds == ["user_message", "tool_call_message", "tool_return_message"]


def test_logprob_options_reach_the_llm(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="logprobs", model=handle)
    run = client.agents.messages.create_async(
        agent_id=agent.id, input="hi", return_logprobs=True, top_logprobs=3, return_token_ids=True
    )
    assert wait_for_run(client, run.id).status == "completed"
    (request,) = fake_llm.requests(model)
    assert (request.get("logprobs"), request.get("top_logprobs")) == (True, 3)

    run = client.agents.messages.create_async(agent_id=agent.id, input="plain")
    wait_for_run(client, run.id)
    assert "logprobs" not in fake_llm.requests(model)[1]


def test_later_issue_parameters_are_accepted(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="accepted", model=handle)
    for thinking in ("true", "false"):
        run = client.agents.messages.create_async(
            agent_id=agent.id,
            input=f"thinking {thinking}",
            enable_thinking=thinking,
            include_compaction_messages=True,
            return_token_ids=True,
        )
        done = wait_for_run(client, run.id)
        assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert len(fake_llm.requests(model)) == 2


def test_client_skills_appear_in_system_prompt(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="skills", model=handle)
    skill: ClientSkill = {
        "name": "pdf-reader",
        "description": "Reads PDF files",
        "location": "skills/pdf/SKILL.md",
    }
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi", client_skills=[skill])
    assert wait_for_run(client, run.id).status == "completed"
    system = fake_llm.requests(model)[0]["messages"][0]["content"]
    for value in skill.values():
        assert value in system


def test_callback_url_is_stored(server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str) -> None:
    client = server.client()
    agent = client.agents.create(name="callback", model=handle)
    # A URL that answers 404: a final answer, so the dispatcher records it without retrying.
    url = f"{fake_llm.base_url}/no-such-callback"
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi", callback_url=url)
    assert run.callback_url == url
    done = wait_for_run(client, run.id)
    assert (done.status, done.callback_url) == ("completed", url)


def test_completed_run_fields_and_ids(
    server: ThreadServer, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = server.client()
    agent = client.agents.create(name="fields", model=handle)
    fake_llm.script(model, ToolCall("conversation_search", {"query": "q"}), Text("done"))
    run = client.agents.messages.create_async(agent_id=agent.id, input="hi")
    assert re.fullmatch(f"run-{UUID4}", run.id)
    assert run.created_at is not None and run.completed_at is None
    done = wait_for_run(client, run.id)
    assert done.status == "completed"
    assert done.ttft_ns is not None and done.ttft_ns > 0
    assert done.total_duration_ns is not None and done.total_duration_ns >= done.ttft_ns
    assert done.created_at is not None and done.completed_at is not None
    assert done.completed_at >= done.created_at
    steps = client.runs.steps.list(run.id).items
    assert len(steps) == 2
    assert all(re.fullmatch(f"step-{UUID4}", s.id) for s in steps)
    messages = client.runs.messages.list(run.id).items
    assert len(messages) == 4
    assert all(re.fullmatch(f"message-{UUID4}", m.id) for m in messages)
