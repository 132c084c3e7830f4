"""send_all_executions: the paged backfill that mirrors past executions to a linked workspace.

Pages by (created_at, id) and pauses while the outbox is deep, so memory stays flat.
"""

from __future__ import annotations

import json

from tether.actions import outgoing
from tether.actions.context import Context
from tether.store import executions, outbox, sync_configs

PAGE = 500
MAX_OUTBOX_DEPTH = 2000


def backfill_step(ctx: Context) -> int:
    """Mirror one page of past executions for each mirroring sync config; return how many."""
    with ctx.db.read() as conn:
        names = sync_configs.mirroring_names(conn)
    return sum(_backfill_page(ctx, name) for name in names)


def _backfill_page(ctx: Context, name: str) -> int:
    with ctx.transaction() as tx:
        state = sync_configs.get_state(tx.conn, name, for_update=True)
        if state.backfill_cursor == sync_configs.BACKFILL_DONE:
            return 0
        if outbox.depth(tx.conn, name) > MAX_OUTBOX_DEPTH:
            return 0
        total = state.backfill_total
        if total is None:
            total = executions.count(tx.conn, origin=executions.LOCAL)
        cursor = tuple(json.loads(state.backfill_cursor)) if state.backfill_cursor else None
        page = executions.page_after(tx.conn, cursor, PAGE, executions.LOCAL)
        for ex in page:
            if ex.sync_config != name:
                outgoing.append_mirror(ctx, tx, name, ex)
        is_last_page = len(page) < PAGE
        new_cursor = (
            sync_configs.BACKFILL_DONE
            if is_last_page
            else json.dumps([page[-1].created_at, page[-1].id])
        )
        sync_configs.update_state(
            tx.conn,
            name,
            backfill_total=total,
            backfill_done=min(total, state.backfill_done + len(page)),
            backfill_cursor=new_cursor,
        )
        return len(page)
