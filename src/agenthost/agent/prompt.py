"""The system prompt an agent's LLM sees: the agent's own text plus its memory blocks (and skills)."""

from __future__ import annotations

from collections.abc import Sequence

from agenthost.schemas.messages import ClientSkill
from agenthost.tools.memory import BlockState

DEFAULT_SYSTEM = (
    "You are a helpful assistant with a persistent memory. Your core memory is made of the blocks "
    "shown below; keep them current with the memory tools when you learn something worth keeping, "
    "use conversation_search to look back at earlier messages, and archival_memory_insert/"
    "archival_memory_search for long-term facts that do not fit in core memory. Answer the user "
    "directly in text."
)


def compile_system(system: str, blocks: Sequence[BlockState], skills: Sequence[ClientSkill] = ()) -> str:
    parts = [system.rstrip()]
    if blocks:
        parts.append("<memory_blocks>\nThese memory blocks are your core memory:\n")
        for block in blocks:
            meta = f"chars_current={len(block.value)} chars_limit={block.limit}"
            if block.read_only:
                meta += " read_only=true"
            desc = f"<description>{block.description}</description>\n" if block.description else ""
            parts.append(
                f"<{block.label}>\n{desc}<metadata>{meta}</metadata>\n<value>\n{block.value}\n</value>\n"
                f"</{block.label}>"
            )
        parts.append("</memory_blocks>")
    if skills:
        lines = [f"- {s.name}: {s.description} (location: {s.location})" for s in skills]
        parts.append("<available_skills>\n" + "\n".join(lines) + "\n</available_skills>")
    return "\n\n".join(parts)
