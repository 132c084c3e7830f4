"""Setting use cases: named JSON values shared by flows."""

from __future__ import annotations

from typing import Any

from tether.actions.context import Context
from tether.store import settings


def get(ctx: Context, name: str) -> Any:
    with ctx.db.read() as conn:
        return settings.get(conn, name)


def exists(ctx: Context, name: str) -> bool:
    with ctx.db.read() as conn:
        return settings.exists(conn, name)


def put(ctx: Context, name: str, value: Any) -> None:
    with ctx.transaction() as tx:
        settings.put(tx.conn, name, value, ctx.now())


def delete(ctx: Context, name: str) -> None:
    with ctx.transaction() as tx:
        settings.delete(tx.conn, name)


def list_all(ctx: Context) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return settings.list_all(conn)
