"""Runs: their lifecycle (the state machine), accepting and reading them, cancelling them, their callbacks
and the following of a run's progress."""
