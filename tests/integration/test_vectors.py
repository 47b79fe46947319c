"""The passage store on its three vector-search paths, and the local embedding model's search quality.

Paths: SQLite with sqlite-vec, the real PostgreSQL without pgvector (exact search in NumPy), and a
PostgreSQL 16 with pgvector started by ``pgserver`` (a PyPI wheel) in a temp dir for this module.
As root, pgserver runs the server as a system user ``pgserver`` it creates with ``useradd``.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from tests.fakes.fake_llm import Error, FakeLLM, fake_embedding

from agenthost.db.database import Database
from agenthost.db.rows import AgentRow
from agenthost.db.vectors import NewPassage, PassageStore, SearchFilter, StoredPassage
from agenthost.errors import InvalidArgument
from agenthost.ids import new_id
from agenthost.memory.embeddings import (
    Embedders,
    EmbeddingFailed,
    EmbeddingUnavailable,
    LocalEmbedder,
    OpenAIEmbedder,
)
from agenthost.settings import Settings

PATHS = {"sqlite": "sqlite-vec", "postgres": "numpy", "pgvector": "pgvector"}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def pgvector_dir() -> Iterator[str | None]:
    """The socket dir of a throwaway PostgreSQL with pgvector (pgserver), or None with the reason kept."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR in a container
            from pgserver.postgres_server import get_server
    except ImportError as exc:
        pytest.pgvector_unavailable = f"pgserver not installed: {exc}"  # type: ignore[attr-defined]
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="agenthost-pgvector-"))
    try:
        server = get_server(root / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        pytest.pgvector_unavailable = f"pgserver failed to start: {exc!r}"  # type: ignore[attr-defined]
        shutil.rmtree(root, ignore_errors=True)
        yield None
        return
    try:
        yield str(server.get_postmaster_info().socket_dir)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Env:
    db: Database
    store: PassageStore
    agent_id: str

    async def add(self, *passages: NewPassage) -> list[StoredPassage]:
        async with self.db.session() as session:
            return await self.store.insert(session, list(passages))

    async def search(self, query: Any, model: str = "m/test", top_k: int = 10, **where: Any) -> list[Any]:
        async with self.db.read_session() as session:
            return await self.store.search(
                session, self.agent_id, query, embedding_model=model, top_k=top_k, where=SearchFilter(**where)
            )

    def new(self, text: str, vector: Any, **kw: Any) -> NewPassage:
        return NewPassage(self.agent_id, text, list(vector), kw.pop("model", "m/test"), **kw)


@pytest.fixture(params=list(PATHS))
def store_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fresh_pg_database: Callable[[], str],
    pgvector_dir: str | None,
) -> Iterator[tuple[str, str]]:
    """(path, database URL): a fresh database of the test's own on each storage path."""
    path = str(request.param)
    if path == "sqlite":
        yield path, Settings(data_dir=tmp_path).sqlalchemy_url()
    elif path == "postgres":
        yield path, Settings(database_url=fresh_pg_database()).sqlalchemy_url()
    else:
        if pgvector_dir is None:
            pytest.skip(getattr(pytest, "pgvector_unavailable", "pgvector unavailable"))
        name = f"agenthost_vec_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_admin(pgvector_dir, f'CREATE DATABASE "{name}"'))
        yield path, f"postgresql+asyncpg://postgres@/{name}?host={pgvector_dir}"
        asyncio.run(_pg_admin(pgvector_dir, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def env(store_url: tuple[str, str]) -> AsyncIterator[Env]:
    path, url = store_url
    db = Database(url)
    try:
        await db.migrate()
        store = PassageStore(db)
        assert await store.detect() == PATHS[path]
        agent_id = new_id("agent")
        async with db.session() as session:
            session.add(
                AgentRow(id=agent_id, name="a", agent_type="t", system="", model="openai/x", context_window=1)
            )
        yield Env(db, store, agent_id)
    finally:
        await db.close()


async def _pg_admin(socket_dir: str, sql: str) -> None:
    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_scores_are_exact_cosine_similarities_best_first(env: Env) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, 16)) * rng.uniform(0.5, 3.0, size=(40, 1))  # not unit length
    stored = await env.add(*(env.new(f"p{i}", v) for i, v in enumerate(vectors)))
    query = rng.normal(size=16)
    cosine = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    expected = np.argsort(-cosine)[:5]

    found = await env.search(query.tolist(), top_k=5)
    assert [p.id for p, _ in found] == [stored[i].id for i in expected]
    assert [s for _, s in found] == pytest.approx(cosine[expected].tolist(), abs=1e-5)
    assert found[0][0].text == f"p{expected[0]}" and found[0][0].embedding_dim == 16
    assert found[0][0].embedding == pytest.approx(vectors[expected[0]].tolist(), rel=1e-6)

    same = await env.search(vectors[3].tolist(), top_k=1)
    assert same[0][0].id == stored[3].id and same[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(await env.search(query.tolist(), top_k=100)) == 40


async def test_tags_any_all_and_creation_dates(env: Env) -> None:
    v = [1.0, 0.0, 0.0]
    await env.add(
        env.new("a", v, tags=["work"], created_at=T0),
        env.new("b", v, tags=["work", "urgent"], created_at=T0 + timedelta(days=1)),
        env.new("c", v, tags=["home", "urgent"], created_at=T0 + timedelta(days=2)),
        env.new("d", v, tags=[], created_at=T0 + timedelta(days=3)),
    )

    async def texts(**where: Any) -> list[str]:
        return sorted(p.text for p, _ in await env.search(v, **where))

    assert await texts() == ["a", "b", "c", "d"]
    assert await texts(tags=["urgent"]) == ["b", "c"]
    assert await texts(tags=["work", "home"]) == ["a", "b", "c"]
    assert await texts(tags=["work", "urgent"], tag_match_mode="all") == ["b"]
    assert await texts(tags=["work", "work"], tag_match_mode="all") == ["a", "b"]
    assert await texts(tags=["nope"]) == []
    assert await texts(start_date=T0 + timedelta(days=1)) == ["b", "c", "d"]
    assert await texts(end_date=T0 + timedelta(days=1)) == ["a", "b"]
    between = {"start_date": T0 + timedelta(hours=1), "end_date": T0 + timedelta(days=2, hours=1)}
    assert await texts(**between) == ["b", "c"]
    assert await texts(tags=["urgent"], start_date=T0 + timedelta(days=2)) == ["c"]


async def test_other_models_and_dimensions_are_never_compared(env: Env) -> None:
    await env.add(
        env.new("eight", np.ones(8)),
        env.new("four", np.ones(4)),
        env.new("other model", np.ones(8), model="m/other"),
    )
    assert [p.text for p, _ in await env.search(np.ones(8).tolist())] == ["eight"]
    assert [p.text for p, _ in await env.search(np.ones(4).tolist())] == ["four"]
    assert [p.text for p, _ in await env.search(np.ones(8).tolist(), model="m/other")] == ["other model"]
    assert await env.search(np.ones(3).tolist()) == []
    assert await env.search([0.0, 0.0, 0.0, 0.0]) == []


async def test_list_pages_filters_text_and_deletes(env: Env) -> None:
    stored = await env.add(
        *(env.new(f"note {i}" + (" Apple" if i % 3 == 0 else ""), [1.0, i]) for i in range(7))
    )
    ids = [p.id for p in stored]

    async def page(**kw: Any) -> list[str]:
        async with env.db.read_session() as session:
            return [p.id for p in await env.store.list_for_agent(session, env.agent_id, **kw)]

    assert await page() == ids
    assert await page(limit=3) == ids[:3]
    assert await page(limit=3, after=ids[2]) == ids[3:6]
    assert await page(limit=2, before=ids[4]) == ids[2:4]
    assert await page(limit=3, ascending=False) == ids[::-1][:3]
    assert await page(limit=3, ascending=False, after=ids[4]) == [ids[3], ids[2], ids[1]]
    assert await page(search="apple") == [ids[0], ids[3], ids[6]]
    assert await page(search="%") == []

    async with env.db.session() as session:
        assert await env.store.delete(session, env.agent_id, ids[1])
        assert not await env.store.delete(session, env.agent_id, ids[1])
        assert not await env.store.delete(session, new_id("agent"), ids[2])  # another agent's id: untouched
    assert await page() == [ids[0], *ids[2:]]
    assert ids[1] not in [p.id for p, _ in await env.search([1.0, 1.0])]


# --- the local model (real all-MiniLM-L6-v2 embeddings) -------------------------------------------

CORPUS = [
    (
        "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
        "When was the famous iron landmark in France built?",
    ),
    (
        "My sister Anna is allergic to peanuts and always carries an epinephrine pen.",
        "Which relative has a nut allergy?",
    ),
    (
        "The quarterly sales report showed revenue grew twelve percent over last year.",
        "How much did the company's income increase?",
    ),
    (
        "To make sourdough bread, feed the starter with flour and water the night before baking.",
        "How do I prepare a wild yeast culture for baking loaves?",
    ),
    (
        "The user's favourite football team is Liverpool and they watch every match.",
        "Which soccer club does the user support?",
    ),
    (
        "Photosynthesis converts sunlight, water and carbon dioxide into glucose and oxygen in leaves.",
        "How do plants turn light into food?",
    ),
    (
        "Python's asyncio event loop runs coroutines cooperatively on a single thread.",
        "How does concurrency work in Python's async framework?",
    ),
    (
        "The user's flight to Tokyo departs on March 3rd from Heathrow at 9am.",
        "When is the trip to Japan leaving?",
    ),
    (
        "Regular jogging lowers blood pressure and improves heart health.",
        "What are the cardiovascular benefits of running?",
    ),
    (
        "The apartment lease ends in June and the landlord wants two months' notice.",
        "When does the rental contract expire?",
    ),
]


@pytest.fixture(scope="module")
def minilm_vectors() -> tuple[list[list[float]], list[list[float]]]:
    """The corpus and the paraphrased queries, embedded once by the local model (in its child process)."""

    async def embed() -> tuple[list[list[float]], list[list[float]]]:
        embedder = Embedders(Settings()).resolve("local/all-MiniLM-L6-v2")
        assert isinstance(embedder, LocalEmbedder)
        try:
            docs = await embedder.embed([doc for doc, _ in CORPUS])
            queries = await embedder.embed([query for _, query in CORPUS])
        finally:
            await embedder.close()
        return docs, queries

    return asyncio.run(embed())


def test_local_model_runs_outside_this_process(minilm_vectors: tuple[list[list[float]], Any]) -> None:
    docs, queries = minilm_vectors
    assert len(docs) == len(queries) == len(CORPUS)
    assert all(len(v) == 384 for v in docs + queries)
    assert np.linalg.norm(np.asarray(docs), axis=1) == pytest.approx(np.ones(len(docs)), abs=1e-5)
    # torch and sentence-transformers were imported by the model's child process only.
    assert "torch" not in sys.modules and "sentence_transformers" not in sys.modules


async def test_paraphrased_queries_find_their_passage(
    env: Env, minilm_vectors: tuple[list[list[float]], list[list[float]]]
) -> None:
    docs, queries = minilm_vectors
    model = "local/all-MiniLM-L6-v2"
    stored = await env.add(
        *(env.new(doc, vec, model=model) for (doc, _), vec in zip(CORPUS, docs, strict=True))
    )
    for i, query in enumerate(queries):
        found = await env.search(query, model=model, top_k=3)
        assert found[0][0].id == stored[i].id, f"{CORPUS[i][1]!r} found {found[0][0].text!r}"
        assert found[0][1] > found[1][1] + 0.05  # and by a margin, not a coin toss


async def test_local_model_process_death_is_a_503_and_the_next_call_restarts_it() -> None:
    embedder = LocalEmbedder("local/all-MiniLM-L6-v2")
    try:
        first = await embedder._process()
        pending = asyncio.create_task(embedder.embed(["hello"]))  # the model loads for seconds first
        deadline = time.monotonic() + 10
        while not embedder._lock.locked():  # the request is on its way to the live process
            assert time.monotonic() < deadline, "the request never started"
            await asyncio.sleep(0.001)
        first.kill()
        with pytest.raises(EmbeddingUnavailable, match="exited") as info:
            await pending
        assert info.value.status_code == 503
        second = await embedder._process()
        assert second is not first and second.returncode is None
    finally:
        await embedder.close()
    assert second.returncode == 0  # closing stdin ended it


# --- the embedders --------------------------------------------------------------------------------


async def test_openai_embedder_against_the_fake(fake_llm: FakeLLM) -> None:
    settings = Settings(openai_base_url=fake_llm.base_url, openai_api_key="k", llm_max_retries=0)
    embedders = Embedders(settings)
    try:
        model = f"emb-{uuid.uuid4().hex[:8]}"
        embedder = embedders.resolve(f"openai/{model}")
        assert isinstance(embedder, OpenAIEmbedder) and embedders.resolve(f"openai/{model}") is embedder
        texts = ["red apples and green apples", "a quiet harbour at dawn", ""]
        vectors = await embedder.embed(texts)
        for text, vector in zip(texts, vectors, strict=True):
            raw = np.asarray(fake_embedding(text))
            assert vector == pytest.approx((raw / np.linalg.norm(raw)).tolist(), abs=1e-6)
        assert fake_llm.requests(model)[0]["input"] == texts
        fake_llm.script(model, Error(500, "embedding backend down"))
        with pytest.raises(EmbeddingFailed, match="HTTP 500") as info:
            await embedder.embed(["x"])
        assert info.value.status_code == 502
    finally:
        await embedders.close()


def test_unknown_embedding_handles_are_rejected() -> None:
    embedders = Embedders(Settings())
    for handle, message in [
        ("letta/letta-free", "unknown embedding provider 'letta'"),
        ("local/bge-small", "unknown local embedding model"),
        ("no-slash", "must have the form"),
        ("openai/text-embedding-3-small", "set OPENAI_API_KEY or OPENAI_BASE_URL"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            embedders.resolve(handle, loc=("body", "embedding"))
