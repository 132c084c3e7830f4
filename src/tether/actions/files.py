"""File use cases: named byte contents shared by flows."""

from __future__ import annotations

from typing import Any

from tether.actions.context import Context
from tether.store import files


def get(ctx: Context, name: str) -> bytes:
    with ctx.db.read() as conn:
        return files.get(conn, name)


def exists(ctx: Context, name: str) -> bool:
    with ctx.db.read() as conn:
        return files.exists(conn, name)


def put(ctx: Context, name: str, content: bytes) -> None:
    with ctx.transaction() as tx:
        files.put(tx.conn, name, content, ctx.now())


def delete(ctx: Context, name: str) -> None:
    with ctx.transaction() as tx:
        files.delete(tx.conn, name)


def list_all(ctx: Context) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return files.list_all(conn)


def names(ctx: Context, prefix: str | None = None) -> list[str]:
    """Names of the files (those starting with ``prefix``), sorted."""
    return [f["name"] for f in list_all(ctx) if not prefix or f["name"].startswith(prefix)]
