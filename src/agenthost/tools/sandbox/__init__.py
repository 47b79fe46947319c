"""The sandbox that runs users' custom Python tools, each call in its own short-lived process."""

from agenthost.tools.sandbox.sandbox import Sandbox, SandboxResult

__all__ = ["Sandbox", "SandboxResult"]
