"""What a controlled sync config lets its link run, enforced on SQLite and PostgreSQL.

Starts arrive as signed envelopes at the in-process workspace's listener 'edge' (see
tests/support/envelopes.py). Each refusal is shown beside its control: the same start runs
once the rule allows it.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.envelopes import LISTENER, Link, create_controlling, start_message
from tests.support.stores import add_executions, add_link, open_contexts
from tether.actions import executions as execution_actions
from tether.actions import processes
from tether.actions.context import Context
from tether.statuses import Status
from tether.store import executions, outbox

MARKING = "def handler(system, this):\n    system.setting('ran').save(value=True)\n"
MARKING_SHA256 = hashlib.sha256(MARKING.encode()).hexdigest()
# Tries a remote start over sync config 'onward', itself and through a local child.
TRY_ONWARD = """
import flow_api


def try_onward(this):
    try:
        this.flow("leaf", remote_workspace_name="onward", run=False).cancel()
    except flow_api.PermissionDenied as exc:
        return str(exc)
    return "started"
"""
ONWARD = (
    TRY_ONWARD
    + """

def handler(system, this):
    relay = this.flow("relay")
    this.save(output_value={"direct": try_onward(this), "relay": relay.get("output_value")})
"""
)
RELAY = (
    TRY_ONWARD
    + """

def handler(system, this):
    this.save(output_value={"onward": try_onward(this)})
"""
)


def send(link: Link, seq: int, script: str) -> dict[str, Any]:
    """Deliver a start with ``script`` as message ``seq``; the received execution once ended."""
    remote_id = str(uuid.uuid4())
    sealed = link.capture(start_message(seq, remote_id, script=script))
    assert link.post(sealed.body, sealed.headers).status_code == 200
    (received,) = [r for r in link.received() if r["remote_execution_id"] == remote_id]
    return link.api.wait_ended(received["id"])


def outbox_updates(link: Link, remote_id: str) -> list[dict[str, Any]]:
    """The execution.update bodies waiting to go back over 'edge' for ``remote_id``."""
    db = link.client.app.state.ctx.db
    with db.read() as conn:
        waiting = outbox.pending(conn, LISTENER, 10_000)
    return [
        m.body
        for m in waiting
        if m.type == "execution.update" and m.body["execution_id"] == remote_id
    ]


def test_a_script_not_on_accepted_scripts_never_runs_and_ends_in_error(link: Link) -> None:
    api = link.api
    changed = api.ok("PATCH", f"/sync_config/{LISTENER}", json={"accepted_scripts": ["ab" * 32]})
    assert changed["accepted_scripts"] == ["ab" * 32]
    refused = send(link, 1, MARKING)
    assert refused["status"] == "ENDED_ERROR"
    assert refused["started_at"] is None
    for phrase in (f"sync config '{LISTENER}'", "accepted_scripts", MARKING_SHA256):
        assert phrase in refused["message"]
    assert api.get("/setting/ran").status_code == 404, "the refused script must not have run"
    (update,) = outbox_updates(link, refused["remote_execution_id"])
    assert (update["status"], update["message"]) == ("ENDED_ERROR", refused["message"])

    api.ok("PATCH", f"/sync_config/{LISTENER}", json={"accepted_scripts": [MARKING_SHA256.upper()]})
    accepted = send(link, 2, MARKING)
    assert accepted["status"] == "ENDED_SUCCESS", accepted["message"]
    assert api.wait_setting("ran") is True


def test_any_script_runs_by_default(link: Link) -> None:
    """Control: with the default "any", the same start runs."""
    assert link.api.ok("GET", f"/sync_config/{LISTENER}")["accepted_scripts"] == "any"
    assert send(link, 1, MARKING)["status"] == "ENDED_SUCCESS"
    assert link.api.wait_setting("ran") is True


def test_a_received_execution_and_its_local_children_start_nothing_remote_unless_allowed(
    link: Link, own_key: Any, stranger_key: Any
) -> None:
    api = link.api
    create_controlling(api, own_key, stranger_key, "onward")
    api.create_flow("leaf", "def handler(system, this):\n    pass\n")
    api.create_flow("relay", RELAY)
    script = ONWARD

    refused = send(link, 1, script)
    assert refused["status"] == "ENDED_SUCCESS", refused["message"]
    outputs = refused["output_value"]
    for said in (outputs["direct"], outputs["relay"]["onward"]):
        assert "sync config 'edge'" in said and "allow_onward_remote" in said
    assert refused["owner"] == "tether-link"

    api.ok("PATCH", f"/sync_config/{LISTENER}", json={"allow_onward_remote": True})
    allowed = send(link, 2, script)
    assert allowed["output_value"] == {"direct": "started", "relay": {"onward": "started"}}


def test_a_received_execution_runs_as_the_run_as_user(link: Link) -> None:
    api = link.api
    answer = api.patch(f"/sync_config/{LISTENER}", json={"run_as": "nobody-here"})
    assert answer.status_code == 422 and "no user 'nobody-here'" in answer.json()["message"]
    api.ok("POST", "/user", json={"name": "bot", "password": "a-password-1", "role": "user"})
    api.ok("PATCH", f"/sync_config/{LISTENER}", json={"run_as": "bot"})
    assert send(link, 1, MARKING)["owner"] == "bot"
    api.ok("PATCH", "/user/bot", json={"is_enabled": False})
    refused = send(link, 2, MARKING)
    assert refused["status"] == "ENDED_ERROR"
    assert "PermissionDenied" in refused["message"] and "'bot'" in refused["message"]


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"accepted_scripts": ["abc"]}, "not a SHA-256 digest"),
        ({"accepted_scripts": "all"}, "accepted_scripts"),
        ({"accepted_scripts": None}, '"any" or a list'),
        ({"max_running": 0}, "max_running"),
        ({"allow_onward_remote": None}, "true or false"),
        ({"run_as": "ghost"}, "no user 'ghost'"),
    ],
)
def test_policy_fields_are_checked(link: Link, body: dict[str, Any], phrase: str) -> None:
    answer = link.api.patch(f"/sync_config/{LISTENER}", json=body)
    assert answer.status_code == 422, answer.text
    assert phrase in answer.json()["message"]


# --- max_running, at the claim ----------------------------------------------------------


@pytest.fixture
def contexts(database_url: str) -> Iterator[Callable[[], Context]]:
    with open_contexts(database_url) as open_:
        yield open_


def claim_together(open_context: Callable[[], Context], workers: int) -> list[str]:
    """Each worker claims in batches until it gets nothing, all released at once."""
    barrier = threading.Barrier(workers)
    claimed: list[str] = []
    failures: list[BaseException] = []

    def work(ctx: Context, name: str) -> None:
        try:
            barrier.wait(10)
            while batch := execution_actions.claim_some(ctx, name, 3):
                claimed.extend(ex.id for ex in batch)
        except BaseException as exc:
            failures.append(exc)

    def joined() -> tuple[Context, str]:
        ctx = open_context()
        return ctx, processes.join(ctx, kind="worker", name="w", lease_s=3600).id

    threads = [threading.Thread(target=work, args=joined()) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    return claimed


@pytest.mark.parametrize("cap", [2, None])
def test_concurrent_claims_never_run_more_than_max_running_of_one_link(
    contexts: Callable[[], Context], cap: int | None
) -> None:
    """With no cap (the control) every received execution is claimed at once."""
    ctx = contexts()
    add_link(ctx, cap)
    received = add_executions(ctx, 12, executions.RECEIVED)
    local = add_executions(ctx, 3, executions.LOCAL)
    claimed = claim_together(contexts, 4)
    assert sorted(set(claimed)) == sorted(claimed), "claimed twice"
    assert set(local) <= set(claimed), "executions of other origins are not held back"
    running = [i for i in claimed if i in received]
    assert len(running) == (cap or len(received))
    if cap is None:
        return
    execution_actions.end(ctx, running[0], Status.ENDED_SUCCESS, None)
    assert len(claim_together(contexts, 2)) == 1, "an ended one frees exactly one place"
