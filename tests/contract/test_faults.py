"""Failures under the distributed engine's executors that are not crashes of the test's making: the
database failing while a run starts, and a job taken by a worker that died before starting its run.

Distributed engine only: the embedded engine leaves a run whose start failed in the database as it is
(``created``) until the server restarts, where start-up recovery queues it again.
"""

from __future__ import annotations

from tests.contract.conftest import Cluster, Engine, failing_starts, only_procrastinate, query
from tests.contract.helpers import agent_messages, echo
from tests.fakes.fake_llm import Echo, FakeLLM
from tests.support import wait_for_run, wait_until

pytestmark = only_procrastinate


def fail_until_every_worker_meets_it(
    cluster: Cluster, function: str, params: list[tuple[str, str]], returns: str, message: str
) -> None:
    """Make procrastinate's SQL ``function`` (its ``params``: name, type) raise ``message`` until every
    worker has logged it, then restore it."""
    url = cluster.database_url
    types = ", ".join(t for _, t in params)
    signature = ", ".join(f"{n} {t}" for n, t in params)
    ((original,),) = query(url, f"SELECT pg_get_functiondef('{function}({types})'::regprocedure)")
    logged = [len(w.log()) for w in cluster.workers]
    query(
        url,
        f"CREATE OR REPLACE FUNCTION {function}({signature}) RETURNS {returns} LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION 'injected fault: {message}'; END $$",
    )
    try:
        wait_until(
            lambda: all(message in w.log()[n:] for w, n in zip(cluster.workers, logged, strict=True)),
            timeout=15,
            what=f"every worker to meet the failing {function}",
        )
    finally:
        query(url, original)


def test_database_error_starting_a_run_requeues_it(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="db-fault", model=handle)
    fake_llm.set_default(model, Echo())

    with failing_starts(engine, agent.id, times=1):
        run_id = client.agents.messages.create_async(agent_id=agent.id, input="hello").id
        done = wait_for_run(client, run_id, timeout=20)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    (record,) = engine.runs([run_id])
    assert record.attempt == 2
    assert agent_messages(client, agent.id) == [
        ("user_message", "hello", run_id),
        ("assistant_message", echo("hello"), run_id),
    ]


def test_run_that_cannot_start_fails_after_bounded_attempts(
    engine: Engine, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="db-poison", model=handle)
    fake_llm.set_default(model, Echo())

    with failing_starts(engine, agent.id, times=None):
        run_id = client.agents.messages.create_async(agent_id=agent.id, input="never").id
        failed = wait_for_run(client, run_id, timeout=20)
    assert (failed.status, failed.stop_reason) == ("failed", "error")
    (record,) = engine.runs([run_id])
    assert record.attempt == 3
    assert record.error is not None and "attempted 3 times" in record.error
    assert fake_llm.requests(model) == []
    # The agent is not blocked behind it.
    after = wait_for_run(client, client.agents.messages.create_async(agent_id=agent.id, input="next").id)
    assert (after.status, after.stop_reason) == ("completed", "end_turn")


def test_job_taken_by_a_worker_that_died_before_starting_the_run_is_requeued(
    engine: Engine, cluster: Cluster, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="taken-then-dead", model=handle)
    fake_llm.set_default(model, Echo())
    url = engine.database_url

    cluster.pause_all()
    try:
        run_id = client.agents.messages.create_async(agent_id=agent.id, input="hello").id
        # A worker that takes the job and dies before it starts the run: registered, silent since long ago.
        ((worker_id,),) = query(url, "SELECT worker_id FROM procrastinate_register_worker_v1()")
        query(
            url,
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = %s",
            worker_id,
        )
        taken = query(
            url, "SELECT args->>'run_id' FROM procrastinate_fetch_job_v2(ARRAY['runs'], %s)", worker_id
        )
        assert taken == [(run_id,)]
    finally:
        cluster.resume()

    done = wait_for_run(client, run_id, timeout=20)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert agent_messages(client, agent.id) == [
        ("user_message", "hello", run_id),
        ("assistant_message", echo("hello"), run_id),
    ]


def test_worker_heartbeats_resume_after_failing(engine: Engine, cluster: Cluster) -> None:
    # As on a dropped connection: the heartbeat write raises.
    fail_until_every_worker_meets_it(
        cluster, "procrastinate_update_heartbeat_v1", [("worker_id", "bigint")], "void", "heartbeat refused"
    )
    # Both beat again (a worker that stopped beating would be presumed dead, its runs handed back).
    wait_until(lambda: cluster.live_workers() >= len(cluster.workers), timeout=10, what="fresh heartbeats")


def test_worker_whose_job_fetch_fails_comes_back(
    engine: Engine, cluster: Cluster, fake_llm: FakeLLM, model: str, handle: str
) -> None:
    client = engine.client()
    agent = client.agents.create(name="fetch-fault", model=handle)
    fake_llm.set_default(model, Echo())
    # A failed fetch ends procrastinate's worker (run_worker_async raises); the process must not go on
    # executing nothing.
    params = [("target_queue_names", "character varying[]"), ("p_worker_id", "bigint")]
    fail_until_every_worker_meets_it(
        cluster, "procrastinate_fetch_job_v2", params, "procrastinate_jobs", "fetch refused"
    )

    run_id = client.agents.messages.create_async(agent_id=agent.id, input="still there?").id
    done = wait_for_run(client, run_id, timeout=30)
    assert (done.status, done.stop_reason) == ("completed", "end_turn")
    assert all(w.alive() for w in cluster.workers)
