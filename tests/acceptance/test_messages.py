"""Messages through real `tether serve` processes: a flow asks, a person answers over HTTP,
the flow resumes; on PostgreSQL the answer reaches an execution that a `tether worker` runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.test_scale_out import Cluster, cluster, pg_url  # noqa: F401 (fixtures)
from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient, ServedWorkspace

ASKING = """
def handler(system, this):
    message = system.message(
        subject='Approve the change?',
        body={
            'type': 'object',
            'properties': {
                'ticket': {'label': 'Ticket', 'element': 'string', 'order': 1, 'required': True},
                'window': {'label': 'Window', 'element': 'time', 'order': 2, 'default': '22:00'},
                'approve': {'label': 'Approve', 'element': 'submit', 'order': 3},
                'reject': {'label': 'Reject', 'element': 'submit', 'order': 4},
            },
        },
    )
    this.set_output('response', message.wait().get('response'))
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedWorkspace]:
    workspace = ServedWorkspace("asks", tmp_path / "asks").start()
    yield workspace
    workspace.stop()


def the_open_message(api: ApiClient, execution_id: str) -> dict[str, Any]:
    def listed() -> dict[str, Any] | None:
        found = api.ok("GET", "/message")
        return next((m for m in found if m["execution_id"] == execution_id), None)

    return wait_until(listed, f"the message of {execution_id} in GET /message", 60)


def ask_and_answer(api: ApiClient, answerer: ApiClient) -> None:
    """The whole exchange: listed, a bad answer refused (still open), a good one resumes."""
    api.create_flow("approval", ASKING)
    ex = api.start("approval")
    message = the_open_message(answerer, ex["id"])
    assert message["status"] == "open"
    assert list(message["body"]["properties"]) == ["ticket", "window", "approve", "reject"]
    waits = api.ok("GET", f"/execution/{ex['id']}")["waiting_on"]
    assert [w["message_id"] for w in waits] == [message["id"]]

    bad = answerer.post(f"/message/{message['id']}/response", json={"ticket": "T-1"})
    assert bad.status_code == 400, bad.text
    assert "press one of the submit buttons approve, reject" in bad.json()["message"]
    assert the_open_message(answerer, ex["id"])["id"] == message["id"]

    answerer.ok(
        "POST", f"/message/{message['id']}/response", json={"ticket": "T-1", "reject": True}
    )
    ended = api.wait_ended(ex["id"], timeout_s=60)
    assert ended["status"] == "ENDED_SUCCESS", ended
    assert ended["output_value"]["response"] == {
        "ticket": "T-1",
        "window": "22:00",
        "approve": False,
        "reject": True,
    }


def test_a_served_workspace_asks_and_a_user_answers(served: ServedWorkspace) -> None:
    """On SQLite; the answerer has the role 'user': whoever sees executions answers them."""
    api = served.client()
    api.ok("POST", "/user", json={"name": "op", "password": "op-password-1", "role": "user"})
    http = httpx.Client(base_url=served.api_url, timeout=30)
    try:
        operator = ApiClient.login(http, "op", "op-password-1")
        ask_and_answer(api, operator)
        answered = operator.ok("GET", "/message", params={"status": "answered"})
        assert [m["answered_by"] for m in answered] == ["op"]
    finally:
        http.close()
        api.client.close()


def test_an_answer_on_the_server_wakes_an_execution_on_a_worker(cluster: Cluster) -> None:  # noqa: F811
    """On PostgreSQL: the server has no runner, so a worker runs the flow and its wait is
    woken by the answer written through the server (NOTIFY, with the poll behind it)."""
    cluster.add_worker("w1")
    ask_and_answer(cluster.api, cluster.api)
    assert list(cluster.claimers()) == [cluster.workers[0].process_id]
