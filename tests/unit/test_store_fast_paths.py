"""The store's statements built once: the SQL they render, and the checks they keep."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tether import errors
from tether.statuses import STATUSES
from tether.store import executions, statements, sync_configs
from tether.store.schema import execution

# SQLAlchemy leaves the dialect's constructor untyped
POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]


class Recorder:
    """Stands in for a connection: keeps what was executed, reports one row changed."""

    rowcount = 1

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def execute(self, statement: Any, params: dict[str, Any]) -> Recorder:
        self.calls.append((statement, params))
        return self

    def first(self) -> None:
        return None


def rendered(statement: Any, params: dict[str, Any], dialect: sa.Dialect) -> str:
    """The SQL of ``statement`` as executed with ``params`` on ``dialect``."""
    compiled = statement.compile(dialect=dialect, column_keys=sorted(params))
    return " ".join(str(compiled).split())


def test_set_params_refuses_names_that_are_no_column() -> None:
    with pytest.raises(sa.exc.CompileError, match="Unconsumed column names: bogus"):
        statements.set_params(execution, {"message": "m", "bogus": 1}, b_id="x")
    assert statements.set_params(execution, {"message": "m"}, b_id="x") == {
        "message": "m",
        "b_id": "x",
    }


def test_check_field_order_refuses_a_dataclass_out_of_column_order() -> None:
    @dataclasses.dataclass
    class Swapped:
        name: str
        id: str

    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.String), sa.Column("name", sa.String))
    with pytest.raises(TypeError, match="columns of t"):
        statements.check_field_order(Swapped, table)


@pytest.mark.parametrize("new", STATUSES)
def test_update_moves_status_only_forward_in_its_where_clause(new: str) -> None:
    conn = Recorder()
    executions.update(conn, "x", status=new, ended_at=1.0)  # type: ignore[arg-type]
    [(statement, params)] = conn.calls
    assert params == {"status": new, "ended_at": 1.0, "b_id": "x"}
    sql = str(statement.compile(dialect=sqlite.dialect(), column_keys=sorted(params)))
    assert sql.startswith("UPDATE execution SET status=?, ended_at=? WHERE execution.id = ?")
    where = statement.whereclause
    assert where is not None
    allowed = [s for s in STATUSES if executions.is_forward(s, new)]
    # The last criterion is the forward check: status IN (the statuses ``new`` may follow).
    forward = list(where.clauses)[-1]
    assert forward.right.value == allowed


def test_update_without_status_changes_only_unended_executions() -> None:
    conn = Recorder()
    executions.update(conn, "x", message="m")  # type: ignore[arg-type]
    [(statement, params)] = conn.calls
    sql = rendered(statement, params, sqlite.dialect())
    assert sql == (
        "UPDATE execution SET message=? WHERE execution.id = ? "
        "AND (execution.status NOT IN (__[POSTCOMPILE_status_1]))"
    )


def test_lock_inbox_is_for_no_key_update_on_postgresql() -> None:
    conn = Recorder()
    sync_configs.lock_inbox(conn, "peer")  # type: ignore[arg-type]
    [(statement, params)] = conn.calls
    assert params == {"b_name": "peer"}
    assert rendered(statement, params, POSTGRESQL).endswith(
        "WHERE sync_config.name = %(b_name)s::VARCHAR FOR NO KEY UPDATE"
    )
    assert "FOR" not in rendered(statement, params, sqlite.dialect())


def test_get_for_update_locks_the_row_on_postgresql() -> None:
    conn = Recorder()
    with pytest.raises(errors.ExecutionNotFound):
        executions.get_for_update(conn, "x")  # type: ignore[arg-type]
    [(statement, params)] = conn.calls
    assert rendered(statement, params, POSTGRESQL).endswith(
        "WHERE execution.id = %(b_id)s::VARCHAR FOR UPDATE"
    )
