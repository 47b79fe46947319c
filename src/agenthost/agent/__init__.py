"""The agent loop (``letta_v1_agent`` semantics), its prompt and its built-in tools. No FastAPI here."""
