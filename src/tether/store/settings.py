"""Setting rows: named JSON values that flows read and write with system.setting."""

from __future__ import annotations

from typing import Any

from tether import errors
from tether.store.named import NamedRows
from tether.store.schema import setting


def _as_is(value: Any) -> Any:
    return value


ROWS = NamedRows[Any](setting, "value", errors.SettingNotFound, tuple(setting.c), _as_is)
get, exists, list_all, put, delete = ROWS.get, ROWS.exists, ROWS.list_all, ROWS.put, ROWS.delete
