"""proxy_url: the HTTP proxy a dialing sync config goes through (encrypted, write-only)

Revision ID: 0009
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_config", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proxy_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_config", schema=None) as batch_op:
        batch_op.drop_column("proxy_url")
