"""messages: forms of executions for a person to answer (system.message / this.message)

Revision ID: 0010_messages
Revises: 0008_connectors
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_messages"
down_revision = "0008_connectors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "execution_id",
            sa.String(36),
            sa.ForeignKey("execution.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("message_type", sa.String(10), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("answered_by", sa.String(100), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("answered_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_message_execution_id", "message", ["execution_id"])
    op.create_index("ix_message_status", "message", ["status"])


def downgrade() -> None:
    op.drop_index("ix_message_status", table_name="message")
    op.drop_index("ix_message_execution_id", table_name="message")
    op.drop_table("message")
