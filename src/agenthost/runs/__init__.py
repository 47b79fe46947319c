"""Runs: their lifecycle (the state machine) and the run concept's use cases: accepting a message request
as a run and reading runs (``service.py``), cancelling and deleting them (``cancellation.py``), their
callbacks, their result, and following a run's events (``streams.py``)."""
