"""Sync config rows (one side's half of a link) and the live state of each link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import link_state, outbox, sync_config
from tether.store.statements import check_field_order, set_params

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
    accepted_scripts: list[str] | None  # None: any script
    run_as: str | None  # None: the built-in link account
    allow_onward_remote: bool
    max_running: int | None
    proxy_url: str | None  # encrypted with the workspace secret; None: the environment's
    created_at: float
    updated_at: float

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"SyncConfig(name={self.name!r}, role={self.role!r}, enabled={self.is_enabled})"

    @property
    def is_dialer(self) -> bool:
        return bool(self.remote_url)


BACKFILL_DONE = "done"  # backfill_cursor once the last page is in the outbox


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

    @property
    def is_backfilling(self) -> bool:
        """Whether send_all_executions is still writing past executions to the outbox."""
        return self.backfill_total is not None and self.backfill_cursor != BACKFILL_DONE


check_field_order(SyncConfig, sync_config)
check_field_order(LinkState, link_state)

# Statements built once; see tether.store.statements.
_CONFIG_BY_NAME = sync_config.c.name == sa.bindparam("b_name")
_STATE_BY_NAME = link_state.c.sync_config == sa.bindparam("b_name")
_SELECT_CONFIG = sa.select(sync_config).where(_CONFIG_BY_NAME)
_INSERT_CONFIG = sync_config.insert()
_INSERT_STATE = link_state.insert()
_UPDATE_CONFIG = sync_config.update().where(_CONFIG_BY_NAME)
_DELETE_OUTBOX = outbox.delete().where(outbox.c.sync_config == sa.bindparam("b_name"))
_DELETE_STATE = link_state.delete().where(_STATE_BY_NAME)
_DELETE_CONFIG = sync_config.delete().where(_CONFIG_BY_NAME)
# key_share: FOR NO KEY UPDATE on PostgreSQL (see lock_inbox); SQLite ignores FOR UPDATE.
_LOCK_INBOX = sa.select(sync_config.c.name).where(_CONFIG_BY_NAME).with_for_update(key_share=True)
# Same lock mode as _LOCK_INBOX; see lock_caps.
_LOCK_CAPS = (
    sa.select(sync_config.c.name, sync_config.c.max_running)
    .where(sync_config.c.max_running.is_not(None))
    .order_by(sync_config.c.name)
    .with_for_update(key_share=True)
)
_SELECT_STATE = sa.select(link_state).where(_STATE_BY_NAME)
_SELECT_STATE_FOR_UPDATE = _SELECT_STATE.with_for_update()
_UPDATE_STATE = link_state.update().where(_STATE_BY_NAME)
_SELECT_VERSIONS = sa.select(
    sync_config.c.name, sync_config.c.updated_at, sync_config.c.is_enabled, sync_config.c.remote_url
).order_by(sync_config.c.name)
_SELECT_MIRRORING = sa.select(sync_config.c.name).where(
    sync_config.c.is_enabled,
    sync_config.c.send_all_executions,
    sync_config.c.role == CONTROLLING,
)


def find(conn: sa.Connection, name: str) -> SyncConfig | None:
    """The sync config named ``name``, or None."""
    row = conn.execute(_SELECT_CONFIG, {"b_name": name}).first()
    return SyncConfig(*row) if row else None


def get(conn: sa.Connection, name: str) -> SyncConfig:
    """The sync config named ``name``."""
    found = find(conn, name)
    if found is None:
        raise errors.SyncConfigNotFound(name=name)
    return found


def list_all(conn: sa.Connection) -> list[SyncConfig]:
    """All sync configs by name."""
    rows = conn.execute(sa.select(sync_config).order_by(sync_config.c.name))
    return [SyncConfig(*r) for r in rows]


def dialing_versions(conn: sa.Connection) -> tuple[list[str], dict[str, float]]:
    """Every sync config's name, and the version (updated_at) of each that this side dials
    (enabled, with a Remote URL): what a linker needs to see whether its dialers are current,
    without reading every config whole."""
    names: list[str] = []
    dialing: dict[str, float] = {}
    for name, updated_at, is_enabled, remote_url in conn.execute(_SELECT_VERSIONS):
        names.append(name)
        if is_enabled and remote_url:
            dialing[name] = updated_at
    return names, dialing


_SELECT_HEADS = sa.select(
    link_state.c.sync_config, link_state.c.next_seq, link_state.c.acked_seq
).order_by(link_state.c.sync_config)


def heads(conn: sa.Connection) -> dict[str, tuple[int, int]]:
    """Per sync config, the next outbox sequence number and the acked one: a change of
    either means its link has something new to do."""
    return {name: (int(nxt), int(acked)) for name, nxt, acked in conn.execute(_SELECT_HEADS)}


def insert(conn: sa.Connection, item: SyncConfig) -> None:
    """Add a sync config and its link state."""
    try:
        with conn.begin_nested():
            conn.execute(_INSERT_CONFIG, dict(item.__dict__))
    except sa.exc.IntegrityError as exc:
        if database.is_unique_violation(exc):
            raise errors.NameTaken(what="sync config", name=item.name) from exc
        raise
    conn.execute(
        _INSERT_STATE,
        {
            "sync_config": item.name,
            "state": CONNECTING if item.is_enabled else DISABLED,
            "next_seq": 1,
            "acked_seq": 0,
            "applied_seq": 0,
            "backfill_done": 0,
        },
    )


def update(conn: sa.Connection, name: str, **values: Any) -> None:
    """Change columns of a sync config."""
    if conn.execute(_UPDATE_CONFIG, set_params(sync_config, values, b_name=name)).rowcount == 0:
        raise errors.SyncConfigNotFound(name=name)


def delete(conn: sa.Connection, name: str) -> None:
    """Remove a sync config with its state and outbox."""
    params = {"b_name": name}
    conn.execute(_DELETE_OUTBOX, params)
    conn.execute(_DELETE_STATE, params)
    if conn.execute(_DELETE_CONFIG, params).rowcount == 0:
        raise errors.SyncConfigNotFound(name=name)


def lock_inbox(conn: sa.Connection, name: str) -> None:
    """Serialize the appliers of one link's inbound messages until the transaction ends.

    It locks the sync config row, not the link state: writers of executions append to the
    outbox, which locks the link state, so an applier holding that first would deadlock
    with them. The lock order is: sync config, then executions, then link state. On
    PostgreSQL it is FOR NO KEY UPDATE, which the key-share locks taken by inserts that
    reference the sync config (outbox rows) do not wait for.
    """
    conn.execute(_LOCK_INBOX, {"b_name": name})


def lock_caps(conn: sa.Connection) -> dict[str, int]:
    """The max_running of each sync config that has one, locked (in name order) until the
    transaction ends, so that claimers count a link's running executions one at a time."""
    return {name: int(cap) for name, cap in conn.execute(_LOCK_CAPS)}


def get_state(conn: sa.Connection, name: str, *, for_update: bool = False) -> LinkState:
    """The live state of the link of sync config ``name``."""
    query = _SELECT_STATE_FOR_UPDATE if for_update else _SELECT_STATE
    row = conn.execute(query, {"b_name": name}).first()
    if row is None:
        raise errors.SyncConfigNotFound(name=name)
    return LinkState(*row)


def update_state(conn: sa.Connection, name: str, **values: Any) -> None:
    """Change columns of a link's state."""
    conn.execute(_UPDATE_STATE, set_params(link_state, values, b_name=name))


def mirroring_names(conn: sa.Connection) -> list[str]:
    """Names of enabled controlling sync configs that mirror every execution."""
    return list(conn.execute(_SELECT_MIRRORING).scalars())
