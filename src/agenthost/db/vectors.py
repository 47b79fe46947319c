"""Archival passages of agents: insert, list, delete, and search by meaning.

The search itself runs on one of three paths, detected once (see ``vector_search``); whichever it
is, scores are exact cosine similarities and only passages of the query's model are compared.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import String, bindparam, cast, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from agenthost.db import vector_search
from agenthost.db.database import Database
from agenthost.db.rows import Base, PassageRow, PassageTagRow
from agenthost.db.types import utcnow
from agenthost.db.vector_search import PgVector, SearchFilter, TagMatchMode, VectorMode, vector_literal
from agenthost.errors import NotFound
from agenthost.ids import new_id

__all__ = [
    "NewPassage",
    "PassageStore",
    "SearchFilter",
    "StoredPassage",
    "TagMatchMode",
    "Vector",
    "VectorMode",
]

log = logging.getLogger(__name__)

# A list of floats or a 1-D NumPy array.
Vector = Sequence[float] | np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class NewPassage:
    """A passage to store; ``embedding_model`` is the handle that made ``embedding``."""

    agent_id: str
    text: str
    embedding: Vector
    embedding_model: str
    tags: Sequence[str] = ()
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredPassage:
    """A stored passage as the services see it (rows never leave ``db/``)."""

    id: str
    agent_id: str
    text: str
    embedding_model: str
    embedding_dim: int
    tags: list[str]
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    embedding: list[float] | None = field(default=None, repr=False)


_PASSAGES = Base.metadata.tables["passages"]
_PASSAGE_TAGS = Base.metadata.tables["passage_tags"]
_COLUMNS = (
    PassageRow.id,
    PassageRow.agent_id,
    PassageRow.text,
    PassageRow.embedding_model,
    PassageRow.embedding_dim,
    PassageRow.tags,
    PassageRow.metadata_,
    PassageRow.created_at,
    PassageRow.updated_at,
)


class PassageStore:
    """Reads and writes ``passages``/``passage_tags`` in the caller's session (its unit of work)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._mode: VectorMode | None = None

    @property
    def mode(self) -> VectorMode:
        if self._mode is None:
            raise RuntimeError("PassageStore.detect() has not run")
        return self._mode

    async def detect(self) -> VectorMode:
        """Find which path this database supports, from the real column type and functions."""
        if self._mode is None:
            self._mode = await vector_search.detect_mode(self._db)
            log.info("archival memory: vector search by %s", self._mode)
        return self._mode

    async def insert(self, session: AsyncSession, passages: Sequence[NewPassage]) -> list[StoredPassage]:
        """Insert passages and their tag rows (one statement each, in the caller's transaction)."""
        mode = await self.detect()
        now = utcnow()
        stored: list[StoredPassage] = []
        rows: list[dict[str, Any]] = []
        tag_rows: list[dict[str, Any]] = []
        for p in passages:
            vector = np.asarray(p.embedding, dtype="<f4")
            if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
                raise ValueError(f"a passage embedding must be a non-empty finite vector, got {vector.shape}")
            tags = list(dict.fromkeys(p.tags))
            item = StoredPassage(
                id=new_id("passage"),
                agent_id=p.agent_id,
                text=p.text,
                embedding_model=p.embedding_model,
                embedding_dim=int(vector.size),
                tags=tags,
                metadata=p.metadata,
                created_at=p.created_at or now,
                updated_at=now,
                embedding=vector.tolist(),
            )
            stored.append(item)
            rows.append(
                {
                    "id": item.id,
                    "agent_id": item.agent_id,
                    "text": item.text,
                    "embedding_model": item.embedding_model,
                    "embedding_dim": item.embedding_dim,
                    "tags": tags,
                    "metadata": item.metadata,
                    "created_at": item.created_at,
                    "updated_at": now,
                    "vec": vector_literal(vector) if mode == "pgvector" else vector.tobytes(),
                }
            )
            tag_rows.extend({"passage_id": item.id, "agent_id": item.agent_id, "tag": t} for t in tags)
        if rows:
            vec = bindparam("vec", type_=String) if mode == "pgvector" else bindparam("vec")
            value = cast(vec, PgVector()) if mode == "pgvector" else vec
            await session.execute(insert(_PASSAGES).values(embedding=value), rows)
        if tag_rows:
            await session.execute(insert(_PASSAGE_TAGS), tag_rows)
        return stored

    async def list_for_agent(
        self,
        session: AsyncSession,
        agent_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
        ascending: bool = True,
        search: str | None = None,
    ) -> list[StoredPassage]:
        """One page of the agent's passages in creation order; ``after``/``before`` are passage ids."""
        embedding = vector_search.embedding_column(await self.detect())
        stmt = select(*_COLUMNS, embedding).where(PassageRow.agent_id == agent_id)
        if search:
            stmt = stmt.where(func.lower(PassageRow.text).contains(search.lower(), autoescape=True))
        seq = PassageRow.seq
        if after is not None:
            cursor = await self._cursor_seq(session, agent_id, after)
            stmt = stmt.where(seq > cursor if ascending else seq < cursor)
        if before is not None:
            cursor = await self._cursor_seq(session, agent_id, before)
            stmt = stmt.where(seq < cursor if ascending else seq > cursor)
        # Walking back from `before` takes the rows nearest the cursor, then restores the order.
        backwards = before is not None and after is None
        up = ascending != backwards
        stmt = stmt.order_by(seq.asc() if up else seq.desc()).limit(limit)
        page = [_stored(row) for row in (await session.execute(stmt)).all()]
        return page[::-1] if backwards else page

    async def delete(self, session: AsyncSession, agent_id: str, passage_id: str) -> bool:
        """Delete one of the agent's passages; False when it has no passage with that id."""
        await session.execute(
            delete(PassageTagRow).where(
                PassageTagRow.passage_id == passage_id, PassageTagRow.agent_id == agent_id
            )
        )
        result = await session.execute(
            delete(PassageRow).where(PassageRow.id == passage_id, PassageRow.agent_id == agent_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def search(
        self,
        session: AsyncSession,
        agent_id: str,
        query: Vector,
        *,
        embedding_model: str,
        top_k: int = 10,
        where: SearchFilter | None = None,
    ) -> list[tuple[StoredPassage, float]]:
        """The agent's ``top_k`` passages nearest ``query`` (cosine similarity), best first."""
        mode = await self.detect()
        q = np.asarray(query, dtype="<f4")
        if q.ndim != 1 or q.size == 0 or not np.any(q):
            return []
        filters = vector_search.conditions(agent_id, embedding_model, int(q.size), where or SearchFilter())
        found = await vector_search.rank(session, mode, q, filters, _COLUMNS, top_k)
        return [(_stored(row), score) for row, score in found]

    @staticmethod
    async def _cursor_seq(session: AsyncSession, agent_id: str, passage_id: str) -> int:
        value = await session.scalar(
            select(PassageRow.seq).where(PassageRow.id == passage_id, PassageRow.agent_id == agent_id)
        )
        if value is None:
            raise NotFound(f"cursor '{passage_id}' does not name a passage of agent '{agent_id}'")
        return int(value)


def _stored(row: Sequence[Any]) -> StoredPassage:
    pid, agent_id, body, model, dim, tags, metadata, created_at, updated_at, raw = row[:10]
    if isinstance(raw, str):
        embedding: list[float] | None = [float(x) for x in json.loads(raw)]
    elif raw is not None:
        embedding = np.frombuffer(raw, dtype="<f4").tolist()
    else:
        embedding = None
    return StoredPassage(
        id=pid,
        agent_id=agent_id,
        text=body,
        embedding_model=model,
        embedding_dim=dim,
        tags=list(tags or []),
        metadata=metadata,
        created_at=created_at,
        updated_at=updated_at,
        embedding=embedding,
    )
