"""What the contract tests read back: an agent's messages in order, and what the fake LLM answers."""

from __future__ import annotations

from letta_client import Letta


def agent_messages(client: Letta, agent_id: str) -> list[tuple[str, str, str | None]]:
    """The agent's user and assistant messages, oldest first: (message_type, content, run_id)."""
    page = client.agents.messages.list(agent_id, order="asc", limit=1000)
    items = [m for m in page.items if m.message_type in ("user_message", "assistant_message")]
    seqs = [m.seq_id for m in items]
    assert all(s is not None for s in seqs) and seqs == sorted(seqs), f"messages out of seq order: {seqs}"
    return [(m.message_type, str(m.content), m.run_id) for m in items]  # type: ignore[union-attr]


def echo(text: str) -> str:
    """What the fake's ``Echo`` reply answers to ``text``."""
    return f"echo: {text}"
