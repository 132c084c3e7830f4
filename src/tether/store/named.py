"""Rows of one value by name (settings, files): get, exists, list, put (upsert) and delete,
written once for every table of that shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from tether import errors
from tether.store import database

V = TypeVar("V")


class NamedRows(Generic[V]):
    """``table``'s rows by ``name``, each holding one value in ``column`` and ``updated_at``."""

    def __init__(
        self,
        table: sa.Table,
        column: str,
        not_found: type[errors.NotFound],
        listed: Sequence[sa.ColumnElement[Any]],
        read: Callable[[Any], V],
    ) -> None:
        self._column = column
        self._not_found = not_found
        self._read = read
        # Statements built once; see tether.store.statements.
        by_name = table.c.name == sa.bindparam("b_name")
        self._select_value = sa.select(table.c[column]).where(by_name)
        self._select_name = sa.select(table.c.name).where(by_name)
        self._insert = table.insert()
        self._update = table.update().where(by_name)
        self._delete = table.delete().where(by_name)
        self._list = sa.select(*listed).order_by(table.c.name)

    def get(self, conn: sa.Connection, name: str) -> V:
        """The value of ``name``."""
        row = conn.execute(self._select_value, {"b_name": name}).first()
        if row is None:
            raise self._not_found(name=name)
        return self._read(row[0])

    def exists(self, conn: sa.Connection, name: str) -> bool:
        """Whether ``name`` exists."""
        return conn.execute(self._select_name, {"b_name": name}).first() is not None

    def list_all(self, conn: sa.Connection) -> list[dict[str, Any]]:
        """The listed columns of every row, by name."""
        return [dict(r._mapping) for r in conn.execute(self._list)]

    def put(self, conn: sa.Connection, name: str, value: V, now: float) -> None:
        """Create or replace ``name``."""
        values = {self._column: value, "updated_at": now}
        if conn.execute(self._update, {"b_name": name, **values}).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(self._insert, {"name": name, **values})
        except sa.exc.IntegrityError as exc:
            if not database.is_unique_violation(exc):
                raise
            conn.execute(self._update, {"b_name": name, **values})

    def delete(self, conn: sa.Connection, name: str) -> None:
        """Remove ``name``."""
        if conn.execute(self._delete, {"b_name": name}).rowcount == 0:
            raise self._not_found(name=name)
