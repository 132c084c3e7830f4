"""processes: the registry of serve and worker processes and their leases, and the lease
of each sync config's one dialer

Revision ID: 0005_processes
Revises: 0004

Executions keep naming their claimer in the existing `worker` column, now the id of a row
of this table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_processes"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "process",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("lease_s", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "dialer_lease",
        sa.Column("sync_config", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(36), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["sync_config"], ["sync_config.name"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("dialer_lease")
    op.drop_table("process")
