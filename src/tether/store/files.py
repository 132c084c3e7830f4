"""File rows: named byte contents that flows read and write with system.file."""

from __future__ import annotations

import sqlalchemy as sa

from tether import errors
from tether.store.named import NamedRows
from tether.store.schema import file

# The listing gives each file's size, not its content.
_SIZE = sa.func.length(file.c.content).label("size")
ROWS = NamedRows[bytes](
    file, "content", errors.FileNotFound, (file.c.name, _SIZE, file.c.updated_at), bytes
)
get, exists, list_all, put, delete = ROWS.get, ROWS.exists, ROWS.list_all, ROWS.put, ROWS.delete
