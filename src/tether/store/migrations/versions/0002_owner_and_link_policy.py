"""owner of an execution; what a controlled sync config lets its link run

Revision ID: 0002
Revises: 0001

Existing executions get an owner so that those still queued can run: a received one the
built-in link account (created at the next start), a local one the oldest organization
admin (before this revision every execution ran with the server's full powers, so this
narrows nothing that worked). Existing sync configs keep the seed's behaviour: any script,
the built-in account, no onward remote starts, no cap of their own.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LINK_ACCOUNT = "tether-link"  # actions.users.LINK_ACCOUNT when this revision was written


def upgrade() -> None:
    with op.batch_alter_table("execution", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=100), nullable=True))
    with op.batch_alter_table("sync_config", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accepted_scripts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("run_as", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column(
                "allow_onward_remote", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(sa.Column("max_running", sa.Integer(), nullable=True))
    _set_owners()


def _set_owners() -> None:
    execution = sa.table("execution", sa.column("owner"), sa.column("origin"))
    user = sa.table("user", sa.column("name"), sa.column("role"), sa.column("created_at"))
    oldest_admin = (
        sa.select(user.c.name)
        .where(user.c.role == "organization_admin")
        .order_by(user.c.created_at, user.c.name)
        .limit(1)
        .scalar_subquery()
    )
    op.execute(
        execution.update().where(execution.c.origin == "received").values(owner=LINK_ACCOUNT)
    )
    op.execute(execution.update().where(execution.c.origin == "local").values(owner=oldest_admin))


def downgrade() -> None:
    with op.batch_alter_table("sync_config", schema=None) as batch_op:
        batch_op.drop_column("max_running")
        batch_op.drop_column("allow_onward_remote")
        batch_op.drop_column("run_as")
        batch_op.drop_column("accepted_scripts")
    with op.batch_alter_table("execution", schema=None) as batch_op:
        batch_op.drop_column("owner")
