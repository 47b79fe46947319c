"""What one run knows about its tools: their specs, the tool rules' state, and how calls are grouped."""

from __future__ import annotations

import json
from typing import Any

from agenthost.llm.base import ToolSpec
from agenthost.schemas.messages import ClientTool
from agenthost.tools.executor import AgentTool, ToolContext, ToolOutcome
from agenthost.tools.memory import BlockState
from agenthost.tools.rules import ToolRuleSolver


class Toolset:
    """What one run knows about its tools: specs by name, the rules' state, the execution context."""

    def __init__(
        self,
        agent_id: str,
        tools: list[AgentTool],
        tool_rules: list[dict[str, Any]],
        blocks: list[BlockState],
        env: dict[str, str],
        *,
        client_tools: list[ClientTool] | None = None,
        send_tool: str = "send_message",
    ) -> None:
        self.server_tools: dict[str, AgentTool] = {t.name: t for t in tools}
        # Tools the client runs itself (passed with the request): a call pauses the run for the client.
        self.client_tools: dict[str, ClientTool] = {t.name: t for t in client_tools or ()}
        self.specs: dict[str, ToolSpec] = {name: tool.spec() for name, tool in self.server_tools.items()}
        for name, tool in self.client_tools.items():
            if name not in self.specs:
                self.specs[name] = ToolSpec(
                    name, tool.description or "", tool.parameters or {"type": "object", "properties": {}}
                )
        self.send_tool = send_tool or "send_message"
        self.solver = ToolRuleSolver(tool_rules)
        self.context = ToolContext(agent_id, blocks, env)

    def is_client(self, name: str) -> bool:
        return name in self.client_tools and name not in self.server_tools

    def needs_human(self, name: str) -> bool:
        """A client-side tool (the client runs it) or a server tool whose calls need approval."""
        return self.is_client(name) or (name in self.server_tools and self.solver.requires_approval(name))

    def check(self, call: dict[str, Any]) -> str | None:
        """The rules' refusal of this call, or None; a run-first prefill is applied to its arguments.

        Names the agent does not have (and the legacy send tool) are answered by ``_execute_one`` and
        neither checked nor counted by the rules.
        """
        name = call["name"]
        if name not in self.specs:
            return None
        violation = self.solver.check_call(name, list(self.specs))
        if violation is None:
            prefill = self.solver.prefilled_args(name)
            if prefill:
                call["arguments"] = _merged_arguments(call["arguments"], prefill)
        return violation

    def record(self, name: str, outcome: ToolOutcome) -> str | None:
        if name not in self.specs:
            return None
        return self.solver.record_call(name, outcome.text, status=outcome.status)


def batches(calls: list[dict[str, Any]], turn: Toolset) -> list[list[dict[str, Any]]]:
    """Consecutive calls of tools that allow parallel execution form one batch; others run alone."""
    batches: list[list[dict[str, Any]]] = []
    previous_parallel = False
    for call in calls:
        tool = turn.server_tools.get(call["name"])
        parallel = tool is not None and tool.is_custom and tool.enable_parallel_execution
        if parallel and previous_parallel:
            batches[-1].append(call)
        else:
            batches.append([call])
        previous_parallel = parallel
    return batches


def _merged_arguments(arguments: str, prefill: dict[str, Any]) -> str:
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        args = {}
    if not isinstance(args, dict):
        args = {}
    return json.dumps({**args, **prefill})


def required_reminder(missing: list[str]) -> str:
    return (
        f"[system] The turn cannot end yet: first call {', '.join(missing)} "
        "(the agent's tool rules require it before finishing)."
    )
