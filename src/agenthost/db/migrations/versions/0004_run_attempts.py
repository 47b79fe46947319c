"""runs: attempt (fences late writes of a presumed-dead worker), effects_started, job_id, callback lease

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 00:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import agenthost.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("effects_started", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("job_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("callback_lease_until", agenthost.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_runs_agent_status", ["agent_id", "status"], unique=False)
        batch_op.create_index(
            "ix_runs_callback_pending",
            ["callback_pending"],
            unique=False,
            postgresql_where=sa.text("callback_pending"),
            sqlite_where=sa.text("callback_pending"),
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_callback_pending")
        batch_op.drop_index("ix_runs_agent_status")
        batch_op.drop_column("callback_lease_until")
        batch_op.drop_column("job_id")
        batch_op.drop_column("effects_started")
        batch_op.drop_column("attempt")
