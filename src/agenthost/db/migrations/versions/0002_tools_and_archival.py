"""tools, agent_tools, passages (archival memory)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:30:00.000000
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import agenthost.db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The namespace of the built-in tools' stable ids (agenthost.tools.builtin); frozen here.
_BUILTIN_NAMESPACE = uuid.UUID("8f1e7a52-3c55-4d7e-9a3e-0e6b9d0c2a11")


def upgrade() -> None:
    op.create_table(
        "tools",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tool_type", sa.String(length=64), nullable=False),
        sa.Column("source_type", sa.String(length=32), nullable=True),
        sa.Column("source_code", sa.Text(), nullable=True),
        sa.Column("json_schema", _JSON, nullable=False),
        sa.Column("args_json_schema", _JSON, nullable=True),
        sa.Column("tags", _JSON, nullable=False),
        sa.Column("return_char_limit", sa.Integer(), nullable=False),
        sa.Column("pip_requirements", _JSON, nullable=True),
        sa.Column("npm_requirements", _JSON, nullable=True),
        sa.Column("default_requires_approval", sa.Boolean(), nullable=False),
        sa.Column("enable_parallel_execution", sa.Boolean(), nullable=False),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("created_at", agenthost.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", agenthost.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("tools", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tools_tool_type"), ["tool_type"], unique=False)

    op.create_table(
        "agent_tools",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("tool_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tool_id"], ["tools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agent_id", "tool_id"),
    )
    with op.batch_alter_table("agent_tools", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_tools_tool_id"), ["tool_id"], unique=False)

    _move_tool_names_to_agent_tools()
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("tool_names")

    bind = op.get_bind()
    use_pgvector = bind.dialect.name == "postgresql" and _pgvector_available(bind)
    if use_pgvector:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "passages",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        # A `vector` (any dimension) where pgvector is installed; float32 bytes otherwise.
        sa.Column("embedding", _VectorDDL() if use_pgvector else sa.LargeBinary(), nullable=False),
        sa.Column("embedding_model", sa.String(length=255), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=False),
        sa.Column("tags", _JSON, nullable=False),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("created_at", agenthost.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", agenthost.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("passages", schema=None) as batch_op:
        batch_op.create_index("ix_passages_agent_seq", ["agent_id", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_passages_created_at"), ["created_at"], unique=False)

    op.create_table(
        "passage_tags",
        sa.Column("passage_id", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["passage_id"], ["passages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("passage_id", "tag"),
    )
    with op.batch_alter_table("passage_tags", schema=None) as batch_op:
        batch_op.create_index("ix_passage_tags_agent_tag", ["agent_id", "tag"], unique=False)


def downgrade() -> None:
    op.drop_table("passage_tags")
    op.drop_table("passages")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tool_names", _JSON, nullable=False, server_default="[]"))
    op.drop_table("agent_tools")
    op.drop_table("tools")


class _VectorDDL(sa.types.UserDefinedType[bytes]):
    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "vector"


def _pgvector_available(bind: sa.engine.Connection) -> bool:
    found = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    return found is not None


def _move_tool_names_to_agent_tools() -> None:
    """Agents named their built-in tools in a JSON list; they now reference tool rows.

    The rows inserted here are placeholders with the stable built-in ids; the server refreshes every
    built-in tool's description and schema at start-up.
    """
    bind = op.get_bind()
    agents = bind.execute(sa.text("SELECT id, tool_names FROM agents")).all()
    tools = sa.table(
        "tools",
        sa.column("id"),
        sa.column("name"),
        sa.column("tool_type"),
        sa.column("json_schema", _JSON),
        sa.column("tags", _JSON),
        sa.column("return_char_limit"),
        sa.column("default_requires_approval"),
        sa.column("enable_parallel_execution"),
        sa.column("created_at", agenthost.db.types.UTCDateTime(timezone=True)),
        sa.column("updated_at", agenthost.db.types.UTCDateTime(timezone=True)),
    )
    links = sa.table("agent_tools", sa.column("agent_id"), sa.column("tool_id"), sa.column("position"))
    seen: dict[str, str] = {}
    now = datetime.now(UTC)
    for agent_id, names in agents:
        if isinstance(names, str):  # JSON comes back as text through a plain text() query
            names = json.loads(names)
        for position, name in enumerate(names or []):
            if name not in seen:
                seen[name] = f"tool-{uuid.uuid5(_BUILTIN_NAMESPACE, name)}"
                bind.execute(
                    tools.insert().values(
                        id=seen[name],
                        name=name,
                        tool_type="letta_core",
                        json_schema={"name": name, "parameters": {"type": "object", "properties": {}}},
                        tags=[],
                        return_char_limit=50_000,
                        default_requires_approval=False,
                        enable_parallel_execution=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
            bind.execute(links.insert().values(agent_id=agent_id, tool_id=seen[name], position=position))
