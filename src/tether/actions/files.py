"""File use cases: named byte contents shared by flows."""

from __future__ import annotations

from tether.actions.named import Named
from tether.store import files

_FILES = Named(files.ROWS)
get, exists, put, delete = _FILES.get, _FILES.exists, _FILES.put, _FILES.delete
list_all, names = _FILES.list_all, _FILES.names
