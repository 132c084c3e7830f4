"""connectors: named connectors, task inputs, setting locks

Revision ID: 0008_connectors
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_connectors"
down_revision = "0006_rerun"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "setting_lock",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "connector",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("host", sa.String(500), nullable=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "task_input",
        sa.Column(
            "execution_id",
            sa.String(36),
            sa.ForeignKey("execution.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("task_type", sa.String(20), nullable=False),
        sa.Column("connector", sa.String(200), nullable=True),
        sa.Column("inputs", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("task_input")
    op.drop_table("connector")
    op.drop_table("setting_lock")
