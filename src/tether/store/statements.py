"""Helpers for statements built once at import and given their values when executed.

A statement built per call, with its values inside (``.where(c == value)``, ``.values(**row)``),
makes SQLAlchemy build the expression and derive a cache key from every value each time. A
statement built once, with ``sa.bindparam`` placeholders, keeps its cache key and compiled
form; ``conn.execute(statement, params)`` then only binds the values. For INSERT and UPDATE the
keys of ``params`` that name columns become the VALUES or SET clause, so the placeholders of
a WHERE clause are named ``b_...``: a placeholder may not share a column's name.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa


@functools.cache
def _column_names(table: sa.Table) -> frozenset[str]:
    return frozenset(table.c.keys())


def set_params(table: sa.Table, values: Mapping[str, Any], **where: Any) -> dict[str, Any]:
    """Parameters for a prebuilt UPDATE of ``table``: SET ``values``, WHERE placeholders ``where``.

    Keys that name no column would be ignored silently at execution, where ``.values()``
    refuses them; this refuses them the same way.
    """
    unknown = values.keys() - _column_names(table)
    if unknown:
        raise sa.exc.CompileError(f"Unconsumed column names: {', '.join(sorted(unknown))}")
    return {**values, **where}


def check_field_order(cls: type, table: sa.Table) -> None:
    """Refuse a dataclass whose fields do not follow ``table``'s columns in order.

    Rows of ``sa.select(table)`` are then passed positionally, ``cls(*row)``, which costs a
    fraction of ``cls(**row._mapping)``.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    if names != list(table.c.keys()):
        raise TypeError(f"the fields of {cls.__name__} must be the columns of {table.name}")
