"""Runs: the run concept's use cases. Accepting a message request as a run, forced compaction and
reading runs (``service.py``), cancelling and deleting them (``cancellation.py``), their callbacks, their
result, and following a run's events (``streams.py``). The state machine and the only writer of a run's
status is ``db/run_lifecycle.py``; executing runs is ``engine/``."""
