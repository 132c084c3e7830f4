"""The store answers with tether's errors, never SQLAlchemy's: the layers above catch only ours."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tether import errors
from tether.store.database import Database, savepoint


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    opened = Database(database_url)
    with opened.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (k INTEGER PRIMARY KEY, v VARCHAR(3))")
    yield opened
    opened.dispose()


def test_a_key_stored_twice_is_a_store_conflict_that_says_so(db: Database) -> None:
    with pytest.raises(errors.StoreConflict) as caught, db.begin() as conn:
        conn.exec_driver_sql("INSERT INTO probe (k) VALUES (1), (1)")
    assert caught.value.is_unique_violation
    assert errors.http_status(caught.value) == 409


def test_a_value_the_database_refuses_is_not_storable(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite stores any value in any column: nothing to refuse")
    with pytest.raises(errors.ValueNotStorable) as caught, db.begin() as conn:
        conn.exec_driver_sql("INSERT INTO probe (k, v) VALUES (1, 'too long')")
    assert "value cannot be stored" in caught.value.message
    assert errors.http_status(caught.value) == 400


def test_a_failed_savepoint_undoes_only_its_own_block(db: Database) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql("INSERT INTO probe (k) VALUES (1)")
        with pytest.raises(errors.StoreConflict), savepoint(conn):
            conn.exec_driver_sql("INSERT INTO probe (k) VALUES (2)")
            conn.exec_driver_sql("INSERT INTO probe (k) VALUES (1)")
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT k FROM probe").scalars().all() == [1]


def test_an_unreachable_database_is_unavailable() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    with pytest.raises(errors.StoreUnavailable) as caught, db.read():
        pass
    assert errors.http_status(caught.value) == 503
