"""Archival-memory benchmark: vector search over one agent's 10,000 passages, on each storage path.

Passages are random unit vectors of dimension 384 (MiniLM's) written through the store directly,
so no embedding model is involved in the search figures. Paths: SQLite with sqlite-vec, the
PostgreSQL at --pg without pgvector (exact search in NumPy), and PostgreSQL 16 with pgvector
started by pgserver in a temp dir (skipped if pgserver cannot start). Then the local model's
embedding latency for one query (cold: child process start and model load; warm: p50/p95).
It measures; it asserts no timings.

    cd /work/main && .venv/bin/python bench/bench_archival.py [--n 10000] [--queries 200]
        [--pg postgresql://postgres@127.0.0.1:5432/test] [--no-sqlite] [--no-postgres] [--no-pgvector]
        [--no-local]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from agenthost.db.database import Database
from agenthost.db.rows import AgentRow
from agenthost.db.vectors import NewPassage, PassageStore, SearchFilter
from agenthost.ids import new_id
from agenthost.memory.embeddings import LocalEmbedder

DIM = 384
BATCH = 1000


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@asynccontextmanager
async def sqlite_url() -> AsyncIterator[str]:
    path = Path(tempfile.mkdtemp(prefix="bench-archival-"))
    try:
        yield f"sqlite+agenthost_aiosqlite:///{path / 'agenthost.db'}"
    finally:
        shutil.rmtree(path, ignore_errors=True)


@asynccontextmanager
async def pg_url(admin_url: str) -> AsyncIterator[str]:
    name = f"bench_archival_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def pgvector_url() -> AsyncIterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server
    root = Path(tempfile.mkdtemp(prefix="bench-pgvector-"))
    server = await asyncio.to_thread(get_server, root / "pgdata", cleanup_mode="delete")
    try:
        yield f"postgresql+asyncpg://postgres@/postgres?host={server.get_postmaster_info().socket_dir}"
    finally:
        await asyncio.to_thread(server.cleanup)
        shutil.rmtree(root, ignore_errors=True)


async def bench_path(url: str, n: int, queries: int, rng: np.random.Generator) -> dict[str, Any]:
    db = Database(url)
    try:
        await db.migrate()
        store = PassageStore(db)
        mode = await store.detect()
        agent_id = new_id("agent")
        async with db.session() as session:
            session.add(
                AgentRow(id=agent_id, name="bench", agent_type="t", system="", model="x/y", context_window=1)
            )
        vectors = rng.normal(size=(n, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        tags = ["alpha", "beta", "gamma", "delta"]
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            batch = [
                NewPassage(agent_id, f"passage {i}", vectors[i], "local/all-MiniLM-L6-v2", tags=[tags[i % 4]])
                for i in range(start, min(n, start + BATCH))
            ]
            async with db.session() as session:
                await store.insert(session, batch)
        insert_s = time.perf_counter() - started
        if not db.is_sqlite:
            async with db.engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE passages")

        async def one(query: np.ndarray, where: SearchFilter | None) -> float:
            t = time.perf_counter()
            async with db.read_session() as session:
                found = await store.search(
                    session, agent_id, query, embedding_model="local/all-MiniLM-L6-v2", top_k=10, where=where
                )
            assert len(found) == 10
            return (time.perf_counter() - t) * 1000

        qs = rng.normal(size=(queries, DIM)).astype(np.float32)
        for q in qs[:5]:  # warm caches and connections
            await one(q, None)
        plain = [await one(q, None) for q in qs]
        tagged = [await one(q, SearchFilter(tags=["beta"])) for q in qs[: max(20, queries // 4)]]
        # Exactness check: the store's best hit is NumPy's best hit.
        async with db.read_session() as session:
            best = await store.search(
                session, agent_id, qs[0], embedding_model="local/all-MiniLM-L6-v2", top_k=1
            )
        assert best[0][0].text == f"passage {int(np.argmax(vectors @ qs[0]))}"
        return {
            "mode": mode,
            "insert_per_s": n / insert_s,
            "p50": pct(plain, 50),
            "p95": pct(plain, 95),
            "tag_p50": pct(tagged, 50),
            "tag_p95": pct(tagged, 95),
        }
    finally:
        await db.close()


async def bench_local(queries: int) -> dict[str, float]:
    embedder = LocalEmbedder("local/all-MiniLM-L6-v2")
    try:
        t = time.perf_counter()
        await embedder.embed(["warm-up: start the model's process and load the model"])
        cold = time.perf_counter() - t
        times = []
        for i in range(queries):
            t = time.perf_counter()
            await embedder.embed([f"what did the user say about their trip to Tokyo, question {i}?"])
            times.append((time.perf_counter() - t) * 1000)
        batch_t = time.perf_counter()
        await embedder.embed([f"passage number {i} about a topic" for i in range(32)])
        batch32 = (time.perf_counter() - batch_t) * 1000
    finally:
        await embedder.close()
    return {"cold_s": cold, "p50": pct(times, 50), "p95": pct(times, 95), "batch32_ms": batch32}


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--pg", default=os.environ.get("AGENTHOST_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--no-pgvector", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-local", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(42)

    paths: list[tuple[str, Callable[[], Any]]] = []
    if not args.no_sqlite:
        paths.append(("SQLite", sqlite_url))
    if not args.no_postgres:
        paths.append(("PostgreSQL", lambda: pg_url(args.pg)))
    if not args.no_pgvector:
        paths.append(("PostgreSQL + pgvector", pgvector_url))
    print(f"archival search: {args.n} passages of one agent, dim {DIM}, top_k=10, {args.queries} queries")
    print(
        f"{'storage':<24}{'path':<12}{'insert/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'tag p50':>9}{'tag p95':>9}"
    )
    for label, make in paths:
        try:
            async with make() as url:
                r = await bench_path(url, args.n, args.queries, rng)
        except Exception as exc:
            print(f"{label:<24}unavailable: {type(exc).__name__}: {exc}")
            continue
        print(
            f"{label:<24}{r['mode']:<12}{r['insert_per_s']:>10.0f}{r['p50']:>9.2f}{r['p95']:>9.2f}"
            f"{r['tag_p50']:>9.2f}{r['tag_p95']:>9.2f}"
        )
    if not args.no_local:
        r = await bench_local(50)
        print(
            f"local all-MiniLM-L6-v2: cold start {r['cold_s']:.1f} s (process + model load); "
            f"one query p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms; 32 passages {r['batch32_ms']:.0f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
