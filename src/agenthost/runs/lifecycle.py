"""The run state machine: a run's statuses, the transitions between them, and the hand-back policy.

```
            claim             end (stop reason → status)
  created ────────► running ─────────────────────────────► completed | failed | cancelled
     ▲  │              │ │
     │  │   requeue    │ │ cancel, fail (hand-back that may not re-queue)
     │  └──────────────┼─┼──► cancelled | failed
     └─────────────────┘ │
                         └─ fence (running → running: "does this execution still own the run?")
```

This module says which transitions exist and what they mean; ``db/run_lifecycle.py`` is the only code
that writes a run's status, one function per transition, each applying the same bookkeeping when the
run becomes terminal (the agent's last stop reason and time, the run's followers woken, its callback
marked pending).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal


class RunStatus(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.CREATED, RunStatus.RUNNING})
TERMINAL: frozenset[RunStatus] = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class Transition(enum.StrEnum):
    CREATE = "create"  # the request is accepted: a new run, queued
    CLAIM = "claim"  # an execution starts the run
    FENCE = "fence"  # an execution's write, allowed only while it owns the run
    END = "end"  # the execution ends the run; the stop reason decides the status
    CANCEL = "cancel"  # a client cancels the run, queued or running
    REQUEUE = "requeue"  # a stopped execution had done nothing yet: the run waits again (attempt + 1)
    FAIL = "fail"  # a stopped execution may have had effects (or ran out of attempts)


# transition → (the statuses it starts from, the statuses it may lead to). CREATE starts from nothing.
TRANSITIONS: dict[Transition, tuple[frozenset[RunStatus], frozenset[RunStatus]]] = {
    Transition.CREATE: (frozenset(), frozenset({RunStatus.CREATED})),
    Transition.CLAIM: (frozenset({RunStatus.CREATED}), frozenset({RunStatus.RUNNING})),
    Transition.FENCE: (frozenset({RunStatus.RUNNING}), frozenset({RunStatus.RUNNING})),
    Transition.END: (frozenset({RunStatus.RUNNING}), TERMINAL),
    Transition.CANCEL: (ACTIVE, frozenset({RunStatus.CANCELLED})),
    Transition.REQUEUE: (ACTIVE, frozenset({RunStatus.CREATED})),
    Transition.FAIL: (ACTIVE, frozenset({RunStatus.FAILED})),
}

# Letta's stop reasons that make a run ``failed``; every other one but ``cancelled`` completes it.
ERROR_STOP_REASONS = frozenset(
    {
        "error",
        "llm_api_error",
        "invalid_llm_response",
        "invalid_tool_call",
        "insufficient_credits",
        "context_window_overflow_in_system_prompt",
        "max_tokens_exceeded",
        "no_tool_call",
    }
)

# Executions a run may start (the first and its re-queues) before a hand-back fails it instead: a run
# that brings down every process that starts it must not go round forever.
MAX_ATTEMPTS = 3


def status_for(stop_reason: str) -> RunStatus:
    """Letta's mapping from stop reason to run status."""
    if stop_reason == "cancelled":
        return RunStatus.CANCELLED
    return RunStatus.FAILED if stop_reason in ERROR_STOP_REASONS else RunStatus.COMPLETED


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run ends: its stop reason (the status follows), an error text, and timings."""

    stop_reason: str
    error: str | None = None
    ttft_ns: int | None = None
    duration_ns: int | None = None
    # What the run returns besides its messages (``logprobs``, ``turns``), kept in the run's metadata.
    result: dict[str, Any] | None = None
    # The execution that ends the run (None: whoever it is).
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """What a commit did to the run: whether it ended it, and whether its callback is now due."""

    ended: bool
    callback_pending: bool


HandBack = Literal["requeue", "fail"]


def hand_back_verdict(*, had_steps: bool, effects_started: bool, attempt: int) -> tuple[HandBack, str]:
    """What becomes of a run whose execution stopped without ending it (a crash, a shutdown past the
    grace period, an error outside the loop), and why.

    Re-queue is safe only before the run's first committed step and before its first server-side tool
    with effects: then nothing it did outlives it. Otherwise, or after ``MAX_ATTEMPTS`` executions, the
    run fails, with the reason it was not retried.
    """
    if had_steps or effects_started:
        return "fail", "it had committed steps or started tools with effects, so it was not retried"
    if attempt >= MAX_ATTEMPTS:
        return "fail", f"it had been attempted {attempt} times, so it was not retried again"
    return "requeue", "nothing it did had effects yet"
