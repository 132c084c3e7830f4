"""Which server dials which sync config: one dialer per link across the workspace's servers.

A server holds a link's dialer lease while its own process lease lives; links are spread
over the live servers (each takes at most its share), and a clean stop releases them.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from tether.actions.context import Context
from tether.store import dialer_leases, processes, sync_configs

DEFAULT_TAKEOVER_S = 15.0  # with a 5 s renewal, a dead holder's links move within 20 s


def settle(ctx: Context, holder: str, names: Collection[str], takeover_s: float) -> dict[str, int]:
    """The dialing sync configs of ``names`` that ``holder`` dials now, with their epochs:
    those it holds, and free ones (or a dead holder's) up to its share."""
    with ctx.db.read() as conn:
        current = dialer_leases.holdings(conn, takeover_s)
        servers = sum(1 for p in processes.live(conn) if p.kind == processes.SERVE)
    mine = {
        name: holding.epoch
        for name, holding in current.items()
        if holding.holder == holder and name in names
    }
    share = math.ceil(len(names) / max(servers, 1))
    for name in sorted(names):
        if len(mine) >= share:
            break
        holding = current.get(name)
        if name in mine or (holding is not None and holding.holder and holding.is_live):
            continue
        epoch = _take(ctx, holder, name, takeover_s)
        if epoch is not None:
            mine[name] = epoch
    if len(mine) > share:
        # More than its share (it started first): one link a round goes back for another
        # server to take, so that the links spread out without a gap on all at once.
        surplus = max(mine)
        release(ctx, holder, surplus)
        del mine[surplus]
    return mine


def _take(ctx: Context, holder: str, name: str, takeover_s: float) -> int | None:
    with ctx.transaction() as tx:
        if sync_configs.find(tx.conn, name) is None:
            return None
        sync_configs.lock_inbox(tx.conn, name)  # applies see the takeover, or finish first
        return dialer_leases.take(tx.conn, name, holder, takeover_s)


def release(ctx: Context, holder: str, name: str | None = None) -> None:
    """Give up ``holder``'s dialer leases (one, if ``name`` is given) for others to take."""
    with ctx.transaction() as tx:
        dialer_leases.release(tx.conn, holder, name)
