"""The connection to the store: engine set-up, transactions, migrations.

Every difference between SQLite and PostgreSQL lives here, and the translation of the
database's errors into tether's own: no layer above the store catches SQLAlchemy's.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from tether import errors

if TYPE_CHECKING:
    from alembic.config import Config

# The type by which the layers above name a connection, so that only the store imports
# SQLAlchemy (an import-linter contract holds them to it).
Connection = sa.Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration in migrations/versions (a test holds it to Alembic's own head): a
# store already there is not handed to Alembic, whose import alone costs a start 0.2 s.
HEAD_REVISION = "0010_messages"


def normalize_url(url: str) -> str:
    """Make plain postgresql:// URLs use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# A process cut off from PostgreSQL in the middle of a transaction (a black-holed network, a
# frozen VM) keeps its row locks until the server ends its session, by default when TCP
# gives up, hours later: the other processes' reaper would wait for the execution it locked
# all that time. The server ends such a session after 30 s idle inside a transaction; tether
# keeps no transaction open while it waits for anything but the database.
IDLE_IN_TRANSACTION_S = 30
POSTGRESQL_SESSION = {"options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_S}s"}


class Database:
    """One engine and the way to open transactions on it."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.RLock() if self.is_sqlite else contextlib.nullcontext()
        )
        if self.is_sqlite:
            _create_private(sa.make_url(self.url).database)
            self.engine = sa.create_engine(
                self.url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            sa.event.listen(self.engine, "connect", _configure_sqlite)
            sa.event.listen(self.engine, "begin", _begin_sqlite)
        else:
            self.engine = sa.create_engine(
                self.url, pool_size=10, max_overflow=20, connect_args=POSTGRESQL_SESSION
            )

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection in one transaction, committed when the block ends without error."""
        # SQLite has one writer at a time, and a writer that finds the lock taken polls for it
        # with sleeps of 1, 2, 5, 10... ms. Writers of this process queue on a Python lock
        # instead and are handed the database at once; other processes still poll.
        with self._write_lock, translated_errors(), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A connection in a read-only transaction: on SQLite it does not take the write lock."""
        with translated_errors(), self.engine.connect() as plain:
            conn = plain.execution_options(tether_read_only=True)
            with conn.begin():
                yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest migration."""
        if self.revision() == HEAD_REVISION:
            return
        from alembic import command

        with self.engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The store's migration revision, or None before the first migration."""
        with self.read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config() -> Config:
    """Alembic's configuration pointing at the packaged migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _create_private(path: str | None) -> None:
    """Create the SQLite file readable by this account only, before SQLite creates it with the
    umask's mode: SQLite gives its -wal and -shm files the mode of the database file."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # pysqlite's own transaction handling would defer BEGIN; we emit it ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_sqlite(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front, so that two writers never deadlock upgrading;
    # read-only transactions start deferred so that readers never queue behind writers (WAL).
    if conn.get_execution_options().get("tether_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.contextmanager
def savepoint(conn: sa.Connection, is_used: bool = True) -> Iterator[None]:
    """The block in a savepoint (when ``is_used``): a database error in it undoes only the
    block's changes, and reaches the caller as one of tether's errors."""
    with translated_errors(), conn.begin_nested() if is_used else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """The database's errors raised in the block, as tether's own.

    Raises:
        errors.ValueNotStorable: a value did not fit its column (or could not be sent at all).
        errors.StoreConflict: a key or constraint refused a row.
        errors.StoreUnavailable: the database could not be reached or failed to answer.

    Other database errors (a statement the database cannot run) are tether's own bugs:
    they stay as they are, for the 500 handler to log with their SQL.
    """
    try:
        yield
    except sa.exc.DataError as exc:
        raise errors.ValueNotStorable(detail=_first_line(exc.orig)) from exc
    except sa.exc.IntegrityError as exc:
        detail, unique = _first_line(exc.orig), is_unique_violation(exc)
        raise errors.StoreConflict(detail=detail, is_unique_violation=unique) from exc
    except sa.exc.OperationalError as exc:
        raise store_error(exc) from exc
    except (sa.exc.InterfaceError, sa.exc.InternalError) as exc:
        raise errors.StoreUnavailable(detail=str(exc.orig).strip()) from exc
    except sa.exc.DBAPIError:
        raise
    except sa.exc.StatementError as exc:  # a value the driver could not even send
        raise errors.ValueNotStorable(detail=_first_line(exc.orig)) from exc


def _first_line(error: BaseException | None) -> str:
    return (str(error).strip().splitlines() or ["a value does not fit"])[0]


# SQLite's SQLITE_FULL, PostgreSQL's disk_full, and the OS's ENOSPC wherever it surfaces.
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"
_DISK_FULL_WORDS = ("database or disk is full", "no space left on device")


def store_error(exc: sa.exc.OperationalError) -> errors.StoreUnavailable:
    """The error that says why the store failed: StoreFull for a full disk, on either dialect."""
    detail = str(exc.orig).strip()
    name = getattr(exc.orig, "sqlite_errorname", None)  # SQLite's extended code says which call
    if name and name != "SQLITE_ERROR":
        detail = f"{detail} ({name})"
    is_full = (
        getattr(exc.orig, "sqlite_errorcode", None) == _SQLITE_FULL
        or getattr(exc.orig, "sqlstate", None) == _PG_DISK_FULL
        or any(words in detail.lower() for words in _DISK_FULL_WORDS)
    )
    if is_full:
        return errors.StoreFull(detail=detail)
    return errors.StoreUnavailable(detail=detail)


def is_unique_violation(exc: sa.exc.IntegrityError) -> bool:
    """Whether ``exc`` is a primary key or unique constraint violation, on either dialect."""
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text


class ClockNow(FunctionElement[float]):
    """The database's clock, in seconds since the epoch: the one clock every process of a
    workspace shares, so that leases never depend on the hosts' clocks agreeing."""

    type = sa.Float()
    inherit_cache = True


@compiles(ClockNow, "postgresql")
def _clock_now_postgresql(_element, _compiler, **_kw) -> str:  # type: ignore[no-untyped-def]
    # clock_timestamp(), not now(): now() stays at the transaction's start.
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(ClockNow, "sqlite")
def _clock_now_sqlite(_element, _compiler, **_kw) -> str:  # type: ignore[no-untyped-def]
    return "((julianday('now') - 2440587.5) * 86400.0)"
