"""re-runs: an execution records the one it repeats

Revision ID: 0006_rerun
Revises: 0004

A re-run is a new execution with the same flow and inputs as an earlier one; ``rerun_of``
names that earlier execution (no foreign key: the earlier one may be deleted with its flow's
history, and the record of the repeat stays).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_rerun"
down_revision = "0005_processes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("execution", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rerun_of", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution", schema=None) as batch_op:
        batch_op.drop_column("rerun_of")
