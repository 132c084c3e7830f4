"""The runner's ends that come at once are written in one transaction, and one that cannot be
written (deleted meanwhile, a status that is not final) leaves the others ended."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from tests.support.stores import add_executions, open_contexts
from tether import errors
from tether.actions import executions as execution_actions
from tether.actions.context import Context
from tether.actions.executions import Ending
from tether.statuses import Status
from tether.store import executions


@pytest.fixture
def ctx(database_url: str) -> Iterator[Context]:
    with open_contexts(database_url) as open_:
        yield open_()


def statuses(ctx: Context, ids: list[str]) -> list[str]:
    return [execution_actions.get(ctx, execution_id).status for execution_id in ids]


def count_commits(ctx: Context, write: Callable[[], object]) -> int:
    commits = 0

    def counted(_conn: sa.Connection) -> None:
        nonlocal commits
        commits += 1

    sa.event.listen(ctx.db.engine, "commit", counted)
    try:
        write()
    finally:
        sa.event.remove(ctx.db.engine, "commit", counted)
    return commits


def test_each_ending_keeps_its_own_outcome(ctx: Context) -> None:
    first, second, third = add_executions(ctx, 3, executions.LOCAL, status=Status.RUNNING)
    outcomes = execution_actions.end_all(
        ctx,
        [
            Ending(first, Status.ENDED_SUCCESS, None),
            Ending("no-such-execution", Status.ENDED_SUCCESS, None),
            Ending(second, Status.ENDED_CANCELLED, "cancelled"),
            Ending(third, Status.RUNNING, None),
        ],
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], errors.NotFound)
    assert isinstance(outcomes[3], errors.InvalidInput)
    assert statuses(ctx, [first, second, third]) == [
        Status.ENDED_SUCCESS,
        Status.ENDED_CANCELLED,
        Status.RUNNING,
    ]
    assert execution_actions.get(ctx, second).message == "cancelled"


def test_a_batch_is_one_commit(ctx: Context) -> None:
    ids = add_executions(ctx, 50, executions.LOCAL, status=Status.RUNNING)
    endings = [Ending(execution_id, Status.ENDED_SUCCESS, None) for execution_id in ids]
    assert count_commits(ctx, lambda: execution_actions.end_all(ctx, endings)) == 1
    assert set(statuses(ctx, ids)) == {Status.ENDED_SUCCESS}


def test_control_ends_one_by_one_commit_one_each(ctx: Context) -> None:
    ids = add_executions(ctx, 50, executions.LOCAL, status=Status.RUNNING)

    def one_by_one() -> None:
        for execution_id in ids:
            execution_actions.end(ctx, execution_id, Status.ENDED_SUCCESS, None)

    assert count_commits(ctx, one_by_one) == 50
