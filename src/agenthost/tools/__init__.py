"""Custom tools: deriving their JSON schema from source, and running them."""
