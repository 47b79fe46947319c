"""LLM providers behind one narrow interface (``LLMClient``); the agent loop never sees a provider SDK."""
