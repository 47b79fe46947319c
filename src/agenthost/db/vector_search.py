"""Ranking an agent's passages by cosine similarity to a query, on the path the database supports.

- ``sqlite-vec``: SQLite with sqlite-vec; ``vec_distance_cosine`` over the agent's rows, in C.
- ``pgvector``: PostgreSQL whose ``passages.embedding`` is a ``vector`` column; ``<=>`` (cosine
  distance), ORDER BY ... LIMIT. The column has no fixed dimension (agents may use different
  models), so pgvector cannot index it: this is an exact scan of the agent's filtered rows.
- ``numpy``: PostgreSQL without pgvector (or SQLite without sqlite-vec): the agent's filtered
  float32 blobs are fetched and scored with one matrix product, then the top rows are read.

Every path is exact, scores are cosine similarities (1 = same direction), best first, and a query
is only ever compared with passages embedded by the same model and dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import ColumnElement, Float, String, Text, bindparam, cast, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import UserDefinedType

from agenthost.db.database import Database
from agenthost.db.rows import PassageRow, PassageTagRow

VectorMode = Literal["sqlite-vec", "pgvector", "numpy"]
TagMatchMode = Literal["any", "all"]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    tags: Sequence[str] = ()
    tag_match_mode: TagMatchMode = "any"
    start_date: datetime | None = None
    end_date: datetime | None = None


class PgVector(UserDefinedType[Any]):
    """pgvector's type, for CASTs only (the ORM maps the column as bytes)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"


async def detect_mode(db: Database) -> VectorMode:
    """Which path this database supports, from the real column type and the functions it has."""
    if db.is_sqlite:
        async with db.read_engine.connect() as conn:
            try:
                await conn.execute(text("SELECT vec_version()"))
            except DBAPIError:
                return "numpy"
            return "sqlite-vec"
    async with db.engine.connect() as conn:
        column_type = await conn.scalar(
            text(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'passages'::regclass AND attname = 'embedding'"
            )
        )
    return "pgvector" if str(column_type).startswith("vector") else "numpy"


def vector_literal(vector: np.ndarray[Any, Any]) -> str:
    """pgvector's text form. 9 significant digits round-trip a float32 exactly."""
    return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"


def embedding_column(mode: VectorMode) -> Any:
    # pgvector's text form '[0.1,0.2]' is read as text: asyncpg has no codec for `vector`.
    return cast(PassageRow.embedding, Text) if mode == "pgvector" else PassageRow.embedding


def conditions(agent_id: str, model: str, dim: int, where: SearchFilter) -> list[ColumnElement[bool]]:
    """The agent's passages of this embedding model and dimension that pass the filter."""
    out = [
        PassageRow.agent_id == agent_id,
        PassageRow.embedding_model == model,
        PassageRow.embedding_dim == dim,
    ]
    if where.start_date is not None:
        out.append(PassageRow.created_at >= where.start_date)
    if where.end_date is not None:
        out.append(PassageRow.created_at <= where.end_date)
    tags = list(dict.fromkeys(where.tags))
    if tags:
        tagged = select(PassageTagRow.passage_id).where(
            PassageTagRow.agent_id == agent_id, PassageTagRow.tag.in_(tags)
        )
        if where.tag_match_mode == "all":
            tagged = tagged.group_by(PassageTagRow.passage_id).having(func.count() == len(tags))
        out.append(PassageRow.id.in_(tagged))
    return out


async def rank(
    session: AsyncSession,
    mode: VectorMode,
    q: np.ndarray[Any, Any],
    where: list[ColumnElement[bool]],
    columns: Sequence[Any],
    top_k: int,
) -> list[tuple[Sequence[Any], float]]:
    """The ``top_k`` rows (``columns`` then the embedding) passing ``where``, nearest ``q`` first."""
    if mode == "numpy":
        return await _rank_numpy(session, q, where, columns, top_k)
    if mode == "pgvector":
        # A scalar subquery: the text is parsed into a vector once, not once per row.
        target = select(cast(bindparam("q", vector_literal(q), type_=String), PgVector())).scalar_subquery()
        distance: Any = PassageRow.embedding.op("<=>", return_type=Float)(target)
    else:
        distance = func.vec_distance_cosine(PassageRow.embedding, bindparam("q", q.tobytes()))
    # Rank on (seq, distance) alone, then read the winners' columns: the sort never carries texts
    # and embeddings, and only top_k embeddings are decoded.
    top = (
        select(PassageRow.seq, distance.label("distance"))
        .where(*where)
        .order_by(distance, PassageRow.seq.desc())
        .limit(top_k)
        .subquery()
    )
    stmt = (
        select(*columns, embedding_column(mode), top.c.distance)
        .join(top, top.c.seq == PassageRow.seq)
        .order_by(top.c.distance, PassageRow.seq.desc())
    )
    return [(row[:-1], 1.0 - float(row[-1])) for row in (await session.execute(stmt)).all()]


async def _rank_numpy(
    session: AsyncSession,
    q: np.ndarray[Any, Any],
    where: list[ColumnElement[bool]],
    columns: Sequence[Any],
    top_k: int,
) -> list[tuple[Sequence[Any], float]]:
    # Row by row: measured on PostgreSQL, one row of array_agg/string_agg was slower to build and
    # to receive than 10,000 plain rows.
    rows = (await session.execute(select(PassageRow.seq, PassageRow.embedding).where(*where))).all()
    if not rows:
        return []
    seqs = np.asarray([r[0] for r in rows], dtype=np.int64)
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), q.size)
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(q))
    scores = (matrix @ q) / np.where(norms == 0, 1.0, norms)
    k = min(top_k, len(rows))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
    # Best first; among equal scores the newer passage first, as on the SQL paths.
    ranked = sorted(top.tolist(), key=lambda i: (-scores[i], -seqs[i]))
    wanted = [int(seqs[i]) for i in ranked]
    stmt = select(PassageRow.seq, *columns, PassageRow.embedding).where(PassageRow.seq.in_(wanted))
    by_seq = {row[0]: row[1:] for row in (await session.execute(stmt)).all()}
    return [(by_seq[int(seqs[i])], float(scores[i])) for i in ranked if int(seqs[i]) in by_seq]
