"""link hardening: 64-bit sequence numbers

Revision ID: 0004
Revises: 0003

A busy link numbers about 300 messages a second; a 32-bit column (PostgreSQL's INTEGER)
overflows after some 80 days of it. On PostgreSQL this is an ALTER COLUMN ... TYPE BIGINT;
SQLite stores 64-bit integers in any INTEGER column, and batch mode rebuilds the tables.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SEQUENCES = {
    "link_state": ("next_seq", "acked_seq", "applied_seq"),
    "outbox": ("seq",),
}


def upgrade() -> None:
    for table, columns in _SEQUENCES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.Integer(),
                    type_=sa.BigInteger(),
                    existing_nullable=False,
                )


def downgrade() -> None:
    for table, columns in _SEQUENCES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column,
                    existing_type=sa.BigInteger(),
                    type_=sa.Integer(),
                    existing_nullable=False,
                )
