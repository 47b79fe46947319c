"""conversations: threads of one agent, each with its own history, context and queue of runs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 05:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import agenthost.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("model_settings", _JSON, nullable=True),
        sa.Column("context_window_limit", sa.Integer(), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("archived_at", agenthost.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", agenthost.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", agenthost.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_message_at", agenthost.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("context_start_seq", _SEQ, nullable=True),
        sa.Column("context_summary", sa.Text(), nullable=True),
        sa.Column("pending_approval_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index("ix_conversations_agent_seq", ["agent_id", "seq"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conversation_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_messages_conversation_seq", ["conversation_id", "seq"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_conversation_seq", ["conversation_id", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_conversation_seq")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_conversation_seq")
        batch_op.drop_column("conversation_id")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_agent_seq")
    op.drop_table("conversations")
