"""Run engines: what executes queued runs. The API and the agent loop see only ``RunEngine``."""
