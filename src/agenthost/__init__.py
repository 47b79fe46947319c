"""agenthost: a self-hosted server for stateful LLM agents that speaks the Letta v1 REST API."""

__version__ = "0.1.0"
