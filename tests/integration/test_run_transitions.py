"""Every transition of the run state machine (``db/run_lifecycle.py``), from every status, against the SQL
that applies it (``db/run_lifecycle.py``) on the real database: a transition from a status its table
allows lands, with the terminal bookkeeping where it ends the run; from any other status it writes
nothing. And no other module writes a run's status.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

import agenthost
from agenthost.db import run_lifecycle
from agenthost.db.database import Database
from agenthost.db.rows import AgentRow, MessageRow, RunRow
from agenthost.db.run_lifecycle import (
    MAX_ATTEMPTS,
    TERMINAL,
    TRANSITIONS,
    Ending,
    RunStatus,
    Transition,
)
from agenthost.db.types import utcnow
from agenthost.ids import new_id
from agenthost.settings import Settings
from agenthost.thread import Thread

JOB = 7


@dataclass
class Outcome:
    landed: bool
    status: RunStatus


Apply = Callable[[AsyncConnection, str], Awaitable[bool]]


async def _claim(conn: AsyncConnection, run_id: str) -> bool:
    return await run_lifecycle.claim(conn, run_id) is not None


async def _fence(conn: AsyncConnection, run_id: str) -> bool:
    return await run_lifecycle.owns_run(conn, run_id, 1)


async def _end(conn: AsyncConnection, run_id: str) -> bool:
    return await run_lifecycle.end_run(conn, run_id, Ending("end_turn", attempt=1)) is not None


async def _cancel(conn: AsyncConnection, run_id: str) -> bool:
    return bool(await run_lifecycle.cancel_runs(conn, [run_id]))


rescheduled: list[tuple[str, Thread]] = []


async def _reschedule(_conn: Any, run_id: str, thread: Thread) -> None:
    rescheduled.append((run_id, thread))


async def _requeue(conn: AsyncConnection, run_id: str) -> bool:
    outcome, _ = await run_lifecycle.hand_back(
        conn, run_id, job_id=JOB, reason="test", reschedule=_reschedule
    )
    return outcome == "requeued"


async def _fail(conn: AsyncConnection, run_id: str) -> bool:
    # The last attempt: a hand-back may not re-queue it again.
    await conn.execute(update(RunRow).where(RunRow.id == run_id).values(attempt=MAX_ATTEMPTS))
    outcome, _ = await run_lifecycle.hand_back(
        conn, run_id, job_id=JOB, reason="test", reschedule=_reschedule
    )
    return outcome == "failed"


APPLY: dict[Transition, Apply] = {
    Transition.CLAIM: _claim,
    Transition.FENCE: _fence,
    Transition.END: _end,
    Transition.CANCEL: _cancel,
    Transition.REQUEUE: _requeue,
    Transition.FAIL: _fail,
}


def test_every_transition_has_a_case() -> None:
    assert set(APPLY) | {Transition.CREATE} == set(Transition)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, fresh_pg_database: Callable[[], str]) -> str:
    url = fresh_pg_database() if backend == "postgres" else None
    return Settings(data_dir=tmp_path, database_url=url).sqlalchemy_url()


def test_transitions_from_every_status(database_url: str) -> None:
    asyncio.run(_transitions(database_url))


async def _transitions(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
        for transition, apply in APPLY.items():
            starts, ends = TRANSITIONS[transition]
            for status in RunStatus:
                agent_id, run_id = await _agent_and_run(db, status)
                async with db.transaction() as conn:
                    landed = await apply(conn, run_id)
                run, agent = await _read(db, run_id, agent_id)
                case = f"{transition} from {status}"
                assert landed == (status in starts), case
                if not landed:
                    assert run.status == status, case
                    assert agent.last_stop_reason is None, case
                    continue
                assert run.status in ends, case
                if run.status in TERMINAL and transition is not Transition.FENCE:
                    # The terminal bookkeeping, the same for every way a run ends.
                    assert run.completed_at is not None, case
                    assert run.callback_pending, case  # the run has a callback URL
                    assert agent.last_stop_reason == run.stop_reason, case
                    assert agent.last_run_completion is not None, case
                if transition is Transition.REQUEUE:
                    assert (run.attempt, run.started_at) == (2, None), case
                    assert rescheduled[-1] == (run_id, Thread(agent_id, None)), case
                    assert await _messages(db, run_id) == [], case  # its input goes; it is written again
    finally:
        await db.close()


async def _agent_and_run(db: Database, status: RunStatus) -> tuple[str, str]:
    agent_id, run_id = new_id("agent"), new_id("run")
    async with db.transaction() as conn:
        await conn.execute(
            insert(AgentRow).values(
                id=agent_id,
                name=agent_id,
                agent_type="letta_v1_agent",
                system="",
                model="openai/x",
                context_window=1000,
                tool_rules=[],
                tool_exec_environment_variables={},
                message_buffer_autoclear=False,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        await conn.execute(
            insert(RunRow).values(
                id=run_id,
                agent_id=agent_id,
                status=status.value,
                background=True,
                request={"inputs": []},
                request_config={},
                callback_url="http://127.0.0.1:9/callback",
                callback_pending=False,
                job_id=JOB,
                attempt=1,
                started_at=utcnow() if status is RunStatus.RUNNING else None,
                created_at=utcnow(),
            )
        )
        if status is not RunStatus.RUNNING:
            return agent_id, run_id
        # What the run's claim wrote: its input.
        await conn.execute(
            insert(MessageRow).values(
                id=new_id("message"),
                agent_id=agent_id,
                run_id=run_id,
                message_type="user_message",
                body={"content": "hi"},
                is_err=False,
                created_at=utcnow(),
            )
        )
    return agent_id, run_id


async def _read(db: Database, run_id: str, agent_id: str) -> tuple[Any, Any]:
    async with db.read_session() as session:
        run = (await session.execute(select(RunRow).where(RunRow.id == run_id))).scalar_one()
        agent = (await session.execute(select(AgentRow).where(AgentRow.id == agent_id))).scalar_one()
    return run, agent


async def _messages(db: Database, run_id: str) -> list[str]:
    async with db.read_session() as session:
        return list((await session.scalars(select(MessageRow.id).where(MessageRow.run_id == run_id))).all())


def test_only_the_lifecycle_module_writes_a_runs_status() -> None:
    """A statement that writes ``runs`` (update/insert of ``RunRow``) names ``status`` only in
    ``db/run_lifecycle.py``; no code assigns a run row's ``.status``."""
    src = Path(agenthost.__file__).parent
    owner = src / "db" / "run_lifecycle.py"
    # The loop's in-memory persistence keeps runs of its own (no database), by the owner's rules.
    in_memory = src / "db" / "in_memory.py"
    offenders = []
    for path in src.rglob("*.py"):
        if path in (owner, in_memory):
            continue
        text = path.read_text()
        for match in re.finditer(r"(update|insert)\(RunRow\)", text):
            statement = _statement(text, match.start())
            written = statement.replace("callback_status", "")
            if re.search(r"(?<![\w.])status\b|RunRow\.status\s*:", written):
                offenders.append(f"{path.relative_to(src)}: {statement[:80]!r}")
        offenders += [
            f"{path.relative_to(src)}: assigns .status" for _ in re.finditer(r"\brun\.status\s*=[^=]", text)
        ]
    assert offenders == []


def _statement(text: str, start: int) -> str:
    """The text of the chained statement starting at ``start``: up to the line where its brackets close."""
    depth, i = 0, start
    opened = False
    while i < len(text):
        ch = text[i]
        if ch in "([{":
            depth, opened = depth + 1, True
        elif ch in ")]}":
            depth -= 1
        elif ch == "\n" and opened and depth <= 0 and not text[i + 1 :].lstrip().startswith("."):
            break
        i += 1
    return text[start:i]
