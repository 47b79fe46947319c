"""A harness for tests of the agent loop's decisions: the real loop on a scripted LLM, the in-memory run
store and a fake tool runner (custom tools are Python callables; nothing is spawned)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agenthost.agent.control import RunControl
from agenthost.agent.loop import AgentLoop
from agenthost.agent.run_request import RunRequest
from agenthost.db.in_memory import InMemoryRunStore
from agenthost.llm.base import LLMRequest
from agenthost.llm.providers import Providers
from agenthost.llm.scripted import ScriptedLLM
from agenthost.settings import Settings
from agenthost.tools.builtin import BUILTIN_TOOLS
from agenthost.tools.executor import AgentTool, ToolExecutor
from agenthost.tools.sandbox import SandboxResult

MODEL = "scripted/m"


class FakeRunner:
    """Runs a custom tool by name from a table of Python callables; counts the calls."""

    def __init__(self, tools: dict[str, Callable[..., str]] | None = None) -> None:
        self.tools = tools or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def run(
        self,
        source_code: str,
        function_name: str,
        args: dict[str, Any],
        env: dict[str, str],
        *,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
    ) -> SandboxResult:
        self.calls.append((function_name, args))
        return SandboxResult("success", self.tools[function_name](**args), [], [])


class Harness:
    def __init__(self, llm: ScriptedLLM, runner: FakeRunner | None = None) -> None:
        self.llm = llm
        self.store = InMemoryRunStore()
        self.runner = runner or FakeRunner()
        self.finished: list[str] = []
        executor = ToolExecutor(self.runner, None, self.store.search_messages, timeout_s=5, memory_mb=256)
        providers = Providers(Settings(), clients={"scripted": llm})
        self.loop = AgentLoop(self.store, providers, executor, on_finished=self.finished.append)

    async def run(self, thread: str, control: RunControl | None = None, **request: Any) -> str:
        """Submit a run (``input`` shorthand as the wire has it) and execute it; its id."""
        run_id = self.store.add_run(thread, request_of(**request))
        await self.loop.execute(run_id, control or RunControl())
        return run_id

    def outcome(self, run_id: str) -> tuple[str, str | None]:
        run = self.store.runs[run_id]
        return run.status.value, run.stop_reason

    def kinds(self, run_id: str) -> list[str]:
        return [m.message_type for m in self.store.messages if m.run_id == run_id]


def request_of(**fields: Any) -> RunRequest:
    if "input" in fields:
        fields["inputs"] = [{"type": "message", "role": "user", "content": fields.pop("input")}]
    return RunRequest.model_validate(fields)


def builtin(name: str) -> AgentTool:
    tool = BUILTIN_TOOLS[name]
    return AgentTool(tool.id, name, tool.tool_type, tool.description, tool.json_schema, None, 10_000, False)


def custom(name: str, *, parallel: bool = False, parameters: dict[str, Any] | None = None) -> AgentTool:
    """A custom tool (its runner is the harness's ``FakeRunner``); ``parameters``: its JSON schema."""
    schema = {
        "name": name,
        "description": name,
        "parameters": parameters or {"type": "object", "properties": {}},
    }
    return AgentTool(f"tool-{name}", name, "custom", name, schema, f"def {name}(): ...", 10_000, parallel)


def user_texts(request: LLMRequest) -> list[str]:
    return [str(m["content"]) for m in request.messages if m["role"] == "user"]


def tool_names(request: LLMRequest) -> list[str]:
    return [t.name for t in request.tools]
