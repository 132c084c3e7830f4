"""Dialer leases: which server dials each sync config, and the epoch every takeover raises.

A hold lasts while its holder process renews its own lease, judged with a bound of at most
``takeover_s`` since its last heartbeat (on the database's clock), so that another server
takes a dead holder's links over in that time. Callers lock the sync config row first
(sync_configs.lock_inbox): a takeover then waits for, and is seen by, every apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tether.store import database
from tether.store.database import ClockNow
from tether.store.schema import dialer_lease, process


@dataclass(frozen=True)
class Holding:
    holder: str | None
    epoch: int
    is_live: bool  # whether the holder still renews its lease (within the takeover bound)


_TAKEOVER = sa.bindparam("b_takeover_s", type_=sa.Float)
_BOUND = sa.case((process.c.lease_s < _TAKEOVER, process.c.lease_s), else_=_TAKEOVER)
_IS_LIVE = (
    sa.exists()
    .where(process.c.id == dialer_lease.c.holder, process.c.heartbeat_at + _BOUND >= ClockNow())
    .label("is_live")
)
_SELECT_HOLDINGS = sa.select(
    dialer_lease.c.sync_config, dialer_lease.c.holder, dialer_lease.c.epoch, _IS_LIVE
)
_BY_NAME = dialer_lease.c.sync_config == sa.bindparam("b_name")
_SELECT_ONE = _SELECT_HOLDINGS.where(_BY_NAME)
_LOCK_ONE = sa.select(dialer_lease.c.holder).where(_BY_NAME).with_for_update()
_INSERT = dialer_lease.insert()
_TAKE = dialer_lease.update().where(_BY_NAME)
_RELEASE = (
    dialer_lease.update()
    .where(dialer_lease.c.holder == sa.bindparam("b_holder"))
    .values(holder=None)
)
_RELEASE_ONE = _RELEASE.where(_BY_NAME)
_HOLDS = sa.select(dialer_lease.c.epoch).where(
    _BY_NAME,
    dialer_lease.c.holder == sa.bindparam("b_holder"),
    dialer_lease.c.epoch == sa.bindparam("b_epoch"),
)


def holdings(conn: sa.Connection, takeover_s: float) -> dict[str, Holding]:
    """Every sync config's dialer lease."""
    rows = conn.execute(_SELECT_HOLDINGS, {"b_takeover_s": takeover_s})
    return {row.sync_config: Holding(row.holder, int(row.epoch), bool(row.is_live)) for row in rows}


def take(conn: sa.Connection, name: str, holder: str, takeover_s: float) -> int | None:
    """Hold the dialer lease of ``name`` for ``holder`` if it is free or its holder is gone;
    its epoch, or None when another live holder has it."""
    if conn.execute(_LOCK_ONE, {"b_name": name}).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(_INSERT, {"sync_config": name, "holder": holder, "epoch": 1})
        except sa.exc.IntegrityError as exc:
            if database.is_unique_violation(exc):
                return None  # another server made the row at the same moment: it holds it
            raise
        return 1
    current = conn.execute(_SELECT_ONE, {"b_name": name, "b_takeover_s": takeover_s}).one()
    if current.holder == holder:
        return int(current.epoch)
    if current.holder is not None and current.is_live:
        return None
    epoch = int(current.epoch) + 1
    conn.execute(_TAKE, {"b_name": name, "holder": holder, "epoch": epoch})
    return epoch


def holds(conn: sa.Connection, name: str, holder: str, epoch: int) -> bool:
    """Whether ``holder`` still holds the dialer lease of ``name`` at ``epoch``."""
    params = {"b_name": name, "b_holder": holder, "b_epoch": epoch}
    return conn.execute(_HOLDS, params).first() is not None


def release(conn: sa.Connection, holder: str, name: str | None = None) -> None:
    """Give up ``holder``'s dialer leases (of ``name`` only, if given) for others to take."""
    if name is None:
        conn.execute(_RELEASE, {"b_holder": holder})
    else:
        conn.execute(_RELEASE_ONE, {"b_holder": holder, "b_name": name})
