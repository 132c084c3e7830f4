"""Every table and column of the store, spelled once.

Only the store package imports this module; migrations must produce exactly this schema.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


class JSONText(sa.types.TypeDecorator[str]):
    """A JSON column written and read as its text: neither parsed nor dumped on the way.

    For the outbox, whose bodies go into envelopes as the text they are stored as
    (tether.messages.Message.from_json). PostgreSQL's driver parses a json column itself, so
    its readers select ``sa.cast(column, sa.Text)``; a JSON path (``column["key"]``) works
    as on any JSON column.
    """

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> None:
        return None  # the text as it is

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> None:
        return None


user = sa.Table(
    "user",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("is_enabled", sa.Boolean, nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

token = sa.Table(
    "token",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column(
        "user_name",
        sa.String(100),
        sa.ForeignKey("user.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    # when the token was last seen, written at most once a minute (sessions.TOUCH_EVERY_S)
    sa.Column("last_used_at", sa.Float, nullable=True),
)

flow = sa.Table(
    "flow",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("script", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

execution = sa.Table(
    "execution",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("flow_name", sa.String(200), nullable=True, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("script", sa.Text, nullable=False),
    sa.Column("script_sha256", sa.String(64), nullable=False),
    sa.Column("input_value", sa.JSON, nullable=False),
    sa.Column("output_value", sa.JSON, nullable=False),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("parent_id", sa.String(36), nullable=True, index=True),
    # local: started here; received: started by a controlling workspace; mirror: read-only copy
    sa.Column("origin", sa.String(10), nullable=False),
    # the sync config it came from (received, mirror) or went to (a remote child)
    sa.Column("sync_config", sa.String(100), nullable=True),
    sa.Column("remote_execution_id", sa.String(36), nullable=True),
    sa.Column("is_cancel_requested", sa.Boolean, nullable=False),
    sa.Column("max_runtime_s", sa.Float, nullable=True),
    # the id of the process (table "process") that claimed it; its lease fences the run
    sa.Column("worker", sa.String(100), nullable=True),
    # the user whose rights bound the execution's flow_api requests; None on mirrors
    sa.Column("owner", sa.String(100), nullable=True),
    sa.Column("log_count", sa.Integer, nullable=False),
    # how many log entries the last execution.update carried over the link
    sa.Column("log_synced", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("ended_at", sa.Float, nullable=True),
    # the execution this one repeats with the same flow and inputs (a re-run), if any
    sa.Column("rerun_of", sa.String(36), nullable=True),
    sa.Index("ix_execution_status_created", "status", "created_at"),
    sa.Index("ix_execution_created_id", "created_at", "id"),
    sa.UniqueConstraint("sync_config", "remote_execution_id", "origin", name="uq_execution_remote"),
)

execution_log = sa.Table(
    "execution_log",
    metadata,
    sa.Column(
        "execution_id",
        sa.String(36),
        sa.ForeignKey("execution.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),
)

setting = sa.Table(
    "setting",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.JSON, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

file = sa.Table(
    "file",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

sync_config = sa.Table(
    "sync_config",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("is_enabled", sa.Boolean, nullable=False),
    sa.Column("remote_url", sa.String(2000), nullable=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("ca_certificate", sa.Text, nullable=True),
    sa.Column("verify_ssl", sa.Boolean, nullable=False),
    # encrypted with the workspace secret; never leaves the store in clear text
    sa.Column("own_private_key", sa.Text, nullable=True),
    sa.Column("next_own_private_key", sa.Text, nullable=True),
    sa.Column("remote_public_keys", sa.JSON, nullable=False),
    sa.Column("send_all_executions", sa.Boolean, nullable=False),
    sa.Column("sync_interval_s", sa.Float, nullable=True),
    # What a controlled side lets the link run: None accepts any script, else the list of
    # SHA-256 hex digests it accepts; run_as None means the built-in link account.
    sa.Column("accepted_scripts", sa.JSON, nullable=True),
    sa.Column("run_as", sa.String(100), nullable=True),
    sa.Column("allow_onward_remote", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("max_running", sa.Integer, nullable=True),
    # The HTTP proxy a dialer goes through, credentials included: encrypted like the keys.
    sa.Column("proxy_url", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# The live state of one link, kept apart from its configuration so that the dialer and the
# API never write the same row. Sequence numbers are 64-bit: a busy link would overflow a
# 32-bit column in months.
link_state = sa.Table(
    "link_state",
    metadata,
    sa.Column(
        "sync_config",
        sa.String(100),
        sa.ForeignKey("sync_config.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("failing_since", sa.Float, nullable=True),
    sa.Column("last_exchange_at", sa.Float, nullable=True),
    sa.Column("remote_name", sa.String(100), nullable=True),
    sa.Column("remote_workspace", sa.String(200), nullable=True),
    sa.Column("remote_role", sa.String(20), nullable=True),
    sa.Column("next_seq", sa.BigInteger, nullable=False),
    sa.Column("acked_seq", sa.BigInteger, nullable=False),
    sa.Column("applied_seq", sa.BigInteger, nullable=False),
    sa.Column("backfill_total", sa.Integer, nullable=True),
    sa.Column("backfill_done", sa.Integer, nullable=False),
    sa.Column("backfill_cursor", sa.String(100), nullable=True),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column(
        "sync_config",
        sa.String(100),
        sa.ForeignKey("sync_config.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("body", JSONText, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

nonce = sa.Table(
    "nonce",
    metadata,
    sa.Column("sync_config", sa.String(100), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)

# Every live serve and worker process of the workspace, one row per start (a fresh id each
# time, never host:pid). Times are the database's clock (epoch seconds): a process holds its
# lease while heartbeat_at + lease_s has not passed.
process = sa.Table(
    "process",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("lease_s", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

# Which server dials a sync config: one at a time across all servers of the workspace. The
# holder is a process id; the hold lasts while that process renews its lease (checked with
# a takeover bound, see store/dialer_leases.py). Every takeover raises the epoch, and every
# apply of the dialer's answers checks the epoch it started with.
dialer_lease = sa.Table(
    "dialer_lease",
    metadata,
    sa.Column(
        "sync_config",
        sa.String(100),
        sa.ForeignKey("sync_config.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("holder", sa.String(36), nullable=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
)

# A setting's lock between executions (system.setting(name).acquire()): held by one
# execution until it releases it; an ended holder's lock is taken over by the next acquirer.
setting_lock = sa.Table(
    "setting_lock",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("execution_id", sa.String(36), nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
)

# A named connector for this.connect: type, host, settings, and credentials encrypted with
# the workspace secret (a JSON object before encryption); the credentials never leave the store
# but to the executions that use the connector.
connector = sa.Table(
    "connector",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("host", sa.String(500), nullable=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("credentials", sa.Text, nullable=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# The unmasked inputs of a task execution (its input_value shows them with secrets masked),
# encrypted with the workspace secret; only the task's own process reads them.
task_input = sa.Table(
    "task_input",
    metadata,
    sa.Column(
        "execution_id",
        sa.String(36),
        sa.ForeignKey("execution.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("task_type", sa.String(20), nullable=False),
    sa.Column("connector", sa.String(200), nullable=True),
    sa.Column("inputs", sa.Text, nullable=False),
)

# A message of an execution (system.message / this.message): a form for a person to answer.
message = sa.Table(
    "message",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "execution_id",
        sa.String(36),
        sa.ForeignKey("execution.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("message_type", sa.String(10), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("status", sa.String(10), nullable=False, index=True),
    sa.Column("response", sa.JSON, nullable=True),
    sa.Column("answered_by", sa.String(100), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("answered_at", sa.Float, nullable=True),
)
