"""Sync config rows (one side's half of a link) and the live state of each link."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import link_state, sync_config

CONTROLLING = "controlling"
CONTROLLED = "controlled"
ROLES = (CONTROLLING, CONTROLLED)

DISABLED = "disabled"
CONNECTING = "connecting"
CONNECTED = "connected"
FAILING = "failing"


@dataclass(frozen=True)
class SyncConfig:
    name: str
    is_enabled: bool
    remote_url: str | None
    role: str
    ca_certificate: str | None
    verify_ssl: bool
    own_private_key: str | None  # encrypted with the workspace secret
    next_own_private_key: str | None  # encrypted; set during a key rotation
    remote_public_keys: list[str]
    send_all_executions: bool
    sync_interval_s: float | None
    created_at: float
    updated_at: float

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"SyncConfig(name={self.name!r}, role={self.role!r}, enabled={self.is_enabled})"

    @property
    def is_dialer(self) -> bool:
        return bool(self.remote_url)


@dataclass(frozen=True)
class LinkState:
    sync_config: str
    state: str
    last_error: str | None
    failing_since: float | None
    last_exchange_at: float | None
    remote_name: str | None
    remote_workspace: str | None
    remote_role: str | None
    next_seq: int
    acked_seq: int
    applied_seq: int
    backfill_total: int | None
    backfill_done: int
    backfill_cursor: str | None


def find(conn: sa.Connection, name: str) -> SyncConfig | None:
    """The sync config named ``name``, or None."""
    row = conn.execute(sa.select(sync_config).where(sync_config.c.name == name)).first()
    return SyncConfig(**row._mapping) if row else None


def get(conn: sa.Connection, name: str) -> SyncConfig:
    """The sync config named ``name``."""
    found = find(conn, name)
    if found is None:
        raise errors.SyncConfigNotFound(name=name)
    return found


def list_all(conn: sa.Connection) -> list[SyncConfig]:
    """All sync configs by name."""
    rows = conn.execute(sa.select(sync_config).order_by(sync_config.c.name))
    return [SyncConfig(**r._mapping) for r in rows]


def insert(conn: sa.Connection, item: SyncConfig) -> None:
    """Add a sync config and its link state."""
    try:
        with conn.begin_nested():
            conn.execute(sync_config.insert().values(**asdict(item)))
    except sa.exc.IntegrityError as exc:
        if database.is_unique_violation(exc):
            raise errors.NameTaken(what="sync config", name=item.name) from exc
        raise
    conn.execute(
        link_state.insert().values(
            sync_config=item.name,
            state=CONNECTING if item.is_enabled else DISABLED,
            next_seq=1,
            acked_seq=0,
            applied_seq=0,
            backfill_done=0,
        )
    )


def update(conn: sa.Connection, name: str, **values: Any) -> None:
    """Change columns of a sync config."""
    query = sync_config.update().where(sync_config.c.name == name).values(**values)
    if conn.execute(query).rowcount == 0:
        raise errors.SyncConfigNotFound(name=name)


def delete(conn: sa.Connection, name: str) -> None:
    """Remove a sync config with its state and outbox."""
    from tether.store.schema import outbox

    conn.execute(outbox.delete().where(outbox.c.sync_config == name))
    conn.execute(link_state.delete().where(link_state.c.sync_config == name))
    if conn.execute(sync_config.delete().where(sync_config.c.name == name)).rowcount == 0:
        raise errors.SyncConfigNotFound(name=name)


def lock_inbox(conn: sa.Connection, name: str) -> None:
    """Serialize the appliers of one link's inbound messages until the transaction ends.

    It locks the sync config row, not the link state: writers of executions append to the
    outbox, which locks the link state, so an applier holding that first would deadlock
    with them. The lock order is: sync config, then executions, then link state. On
    PostgreSQL it is FOR NO KEY UPDATE, which the key-share locks taken by inserts that
    reference the sync config (outbox rows) do not wait for.
    """
    query = sa.select(sync_config.c.name).where(sync_config.c.name == name)
    conn.execute(query.with_for_update(key_share=True))


def get_state(conn: sa.Connection, name: str, *, for_update: bool = False) -> LinkState:
    """The live state of the link of sync config ``name``."""
    query = sa.select(link_state).where(link_state.c.sync_config == name)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise errors.SyncConfigNotFound(name=name)
    return LinkState(**row._mapping)


def update_state(conn: sa.Connection, name: str, **values: Any) -> None:
    """Change columns of a link's state."""
    conn.execute(link_state.update().where(link_state.c.sync_config == name).values(**values))


def mirroring_names(conn: sa.Connection) -> list[str]:
    """Names of enabled controlling sync configs that mirror every execution."""
    query = sa.select(sync_config.c.name).where(
        sync_config.c.is_enabled,
        sync_config.c.send_all_executions,
        sync_config.c.role == CONTROLLING,
    )
    return list(conn.execute(query).scalars())
