"""Archival memory: an agent's passages, embedded with the agent's embedding model, searched by meaning.

The built-in archival tools and the ``archival-memory`` routes both come through here. An embedding
is computed before any transaction opens: no unit of work is held across a call to a model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agenthost.db import agents as agents_db
from agenthost.db.database import Database
from agenthost.db.vectors import NewPassage, PassageStore, SearchFilter, StoredPassage, TagMatchMode
from agenthost.errors import InvalidArgument, NotFound
from agenthost.ids import check_id
from agenthost.memory.embeddings import Embedder, Embedders
from agenthost.pages import MAX_PAGE
from agenthost.schemas.passages import (
    ArchivalMemorySearchResponse,
    ArchivalMemorySearchResult,
    EmbeddingConfig,
    Passage,
)
from agenthost.settings import Settings

log = logging.getLogger(__name__)

MAX_TOP_K = 1000


class PassageService:
    def __init__(self, db: Database, embedders: Embedders, settings: Settings) -> None:
        self._db = db
        self._embedders = embedders
        self._settings = settings
        self.store = PassageStore(db)

    async def start(self) -> None:
        """Detect the vector-search path once, at start-up (the database is migrated by then)."""
        await self.store.detect()

    async def close(self) -> None:
        await self._embedders.close()

    async def insert(
        self,
        agent_id: str,
        text: str,
        tags: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        created_at: datetime | None = None,
    ) -> Passage:
        """Embed ``text`` with the agent's embedding model and store it as one passage."""
        if not text.strip():
            raise InvalidArgument("text must not be empty", loc=("body", "text"))
        tag_list = _tags(tags, ("body", "tags"))
        embedder, _ = await self._agent_embedder(agent_id)
        [vector] = await embedder.embed([text])
        new = NewPassage(
            agent_id=agent_id,
            text=text,
            embedding=vector,
            embedding_model=embedder.handle,
            tags=tag_list,
            metadata=metadata,
            created_at=_utc(created_at),
        )
        async with self._db.session() as session:
            await agents_db.require_agent(session, agent_id)  # deleted while we were embedding: 404
            [stored] = await self.store.insert(session, [new])
        return self._view(stored)

    async def search(
        self,
        agent_id: str,
        query: str,
        top_k: int = 10,
        tags: Sequence[str] | None = None,
        tag_match_mode: TagMatchMode = "any",
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> list[tuple[Passage, float]]:
        """The agent's passages nearest ``query`` by meaning, best first, with cosine similarity scores."""
        found, _ = await self._search(agent_id, query, top_k, tags, tag_match_mode, start_date, end_date)
        return [(self._view(p), score) for p, score in found]

    async def search_view(
        self,
        agent_id: str,
        query: str,
        top_k: int = 10,
        tags: Sequence[str] | None = None,
        tag_match_mode: TagMatchMode = "any",
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> ArchivalMemorySearchResponse:
        """``search`` in the archival-memory search route's shape (timestamps in the agent's timezone)."""
        found, tz = await self._search(agent_id, query, top_k, tags, tag_match_mode, start_date, end_date)
        results = [
            ArchivalMemorySearchResult(
                id=p.id, timestamp=p.created_at.astimezone(tz).isoformat(), content=p.text, tags=p.tags
            )
            for p, _ in found
        ]
        return ArchivalMemorySearchResponse(results=results, count=len(results))

    async def list_for_agent(
        self,
        agent_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        ascending: bool = True,
        search: str | None = None,
    ) -> list[Passage]:
        if limit < 1 or limit > MAX_PAGE:
            raise InvalidArgument(
                f"limit must be between 1 and {MAX_PAGE}, got {limit}", loc=("query", "limit")
            )
        async with self._db.read_session() as session:
            await agents_db.require_agent(session, agent_id)
            page = await self.store.list_for_agent(
                session, agent_id, after=after, before=before, limit=limit, ascending=ascending, search=search
            )
        return [self._view(p) for p in page]

    async def delete(self, agent_id: str, passage_id: str) -> None:
        check_id(passage_id, "passage", ("path", "memory_id"))
        async with self._db.session() as session:
            await agents_db.require_agent(session, agent_id)
            if not await self.store.delete(session, agent_id, passage_id):
                raise NotFound(f"agent '{agent_id}' has no passage '{passage_id}'")

    async def _search(
        self,
        agent_id: str,
        query: str,
        top_k: int,
        tags: Sequence[str] | None,
        tag_match_mode: str,
        start_date: datetime | None,
        end_date: datetime | None,
    ) -> tuple[list[tuple[StoredPassage, float]], ZoneInfo]:
        if not query.strip():
            raise InvalidArgument("query must not be empty", loc=("query", "query"))
        if top_k < 1 or top_k > MAX_TOP_K:
            raise InvalidArgument(
                f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}", loc=("query", "top_k")
            )
        if tag_match_mode not in ("any", "all"):
            raise InvalidArgument(
                f"tag_match_mode must be 'any' or 'all', got '{tag_match_mode}'",
                loc=("query", "tag_match_mode"),
            )
        where = SearchFilter(
            tags=_tags(tags, ("query", "tags")),
            tag_match_mode="all" if tag_match_mode == "all" else "any",
            start_date=_utc(start_date),
            end_date=_utc(end_date),
        )
        embedder, tz = await self._agent_embedder(agent_id)
        [vector] = await embedder.embed([query])
        async with self._db.read_session() as session:
            found = await self.store.search(
                session, agent_id, vector, embedding_model=embedder.handle, top_k=top_k, where=where
            )
        return found, tz

    async def _agent_embedder(self, agent_id: str) -> tuple[Embedder, ZoneInfo]:
        async with self._db.read_session() as session:
            agent = await agents_db.get_agent_config(session, agent_id)
            handle, timezone = agent.embedding or self._embedders.default_handle, agent.timezone
        return self._embedders.resolve(handle), _zone(timezone)

    def _view(self, p: StoredPassage) -> Passage:
        provider, _, model = p.embedding_model.partition("/")
        local = provider == "local"
        config = EmbeddingConfig(
            embedding_endpoint_type="hugging-face" if local else "openai",
            embedding_endpoint=None
            if local
            else self._settings.openai_base_url or "https://api.openai.com/v1",
            embedding_model=model,
            embedding_dim=p.embedding_dim,
            handle=p.embedding_model,
        )
        return Passage(
            id=p.id,
            text=p.text,
            embedding=p.embedding,
            embedding_config=config,
            tags=p.tags,
            metadata=p.metadata if p.metadata is not None else {},
            created_at=p.created_at,
            updated_at=p.updated_at,
        )


def _tags(tags: Sequence[str] | None, loc: Sequence[str | int]) -> list[str]:
    out = list(dict.fromkeys(tags or []))
    for i, tag in enumerate(out):
        if not tag or len(tag) > 255:
            raise InvalidArgument("a tag must have 1 to 255 characters", loc=(*loc, i))
    return out


def _utc(value: datetime | None) -> datetime | None:
    # A time without an offset is taken as UTC, as the rest of the API does.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _zone(name: str | None) -> ZoneInfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("unknown timezone %r; showing UTC", name)
    return ZoneInfo("UTC")
