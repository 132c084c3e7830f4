"""Use cases on rows of one value by name (settings, files), one transaction each, written
once over the store's `NamedRows`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from tether.actions.context import Context
from tether.store.named import NamedRows

V = TypeVar("V")


class Named(Generic[V]):
    """The use cases of one kind of named row."""

    def __init__(self, rows: NamedRows[V]) -> None:
        self._rows = rows

    def get(self, ctx: Context, name: str) -> V:
        with ctx.db.read() as conn:
            return self._rows.get(conn, name)

    def exists(self, ctx: Context, name: str) -> bool:
        with ctx.db.read() as conn:
            return self._rows.exists(conn, name)

    def put(self, ctx: Context, name: str, value: V) -> None:
        with ctx.transaction() as tx:
            self._rows.put(tx.conn, name, value, ctx.now())

    def delete(self, ctx: Context, name: str) -> None:
        with ctx.transaction() as tx:
            self._rows.delete(tx.conn, name)

    def list_all(self, ctx: Context) -> list[dict[str, Any]]:
        with ctx.db.read() as conn:
            return self._rows.list_all(conn)

    def names(self, ctx: Context, prefix: str | None = None) -> list[str]:
        """Names of the rows (those starting with ``prefix``), sorted."""
        rows = self.list_all(ctx)
        return [r["name"] for r in rows if not prefix or r["name"].startswith(prefix)]
