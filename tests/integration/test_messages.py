"""Messages through the API with real child processes: a flow asks, a person answers."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient
from tether.store import notices

ASKING = """
import flow_api

def handler(system, this):
    message = system.message(
        subject='Deploy?',
        message_type='POPUP',
        body={
            'type': 'object',
            'properties': {
                'intro': {'element': 'markdown', 'description': '**prod**', 'order': 1},
                'host': {'label': 'Host', 'element': 'string', 'type': 'string', 'order': 2},
                'count': {'label': 'How many', 'element': 'number', 'order': 3, 'default': 1},
                'sure': {'label': 'Sure?', 'element': 'boolean', 'order': 4},
                'ok': {'label': 'Go', 'element': 'submit', 'order': 5},
            },
            'required': ['host'],
        },
    )
    this.set_output('asked', message.get('status'))
    response = message.wait().get('response')
    this.set_output('response', response)
    this.set_output('by', message.get('answered_by'))
"""


def open_message(api: ApiClient, execution_id: str) -> dict[str, Any]:
    def listed() -> dict[str, Any] | None:
        found = api.ok("GET", "/message", params={"execution_id": execution_id})
        return found[0] if found else None

    return wait_until(listed, f"a message of execution {execution_id}", 30)


def test_a_bad_answer_is_refused_and_a_good_one_resumes_the_flow(api: ApiClient) -> None:
    api.create_flow("asking", ASKING)
    ex = api.start("asking")
    message = open_message(api, ex["id"])
    assert message["subject"] == "Deploy?" and message["message_type"] == "POPUP"
    assert list(message["body"]["properties"]) == ["intro", "host", "count", "sure", "ok"]
    waiting = api.ok("GET", f"/execution/{ex['id']}")["waiting_on"]
    assert [w.get("message_id") for w in waiting] == [message["id"]]
    assert "Deploy?" in waiting[0]["reason"]

    bad = api.post(f"/message/{message['id']}/response", json={"count": 3})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"] == "invalid_answer"
    assert "'Host' (host) is required" in bad.json()["message"]
    still = api.ok("GET", f"/message/{message['id']}")
    assert still["status"] == "open" and still["response"] is None
    assert api.ok("GET", f"/execution/{ex['id']}")["status"] == "RUNNING"

    good = api.ok("POST", f"/message/{message['id']}/response", json={"host": "db1", "sure": True})
    assert good["status"] == "answered" and good["answered_by"] == "admin"
    ended = api.wait_ended(ex["id"])
    assert ended["status"] == "ENDED_SUCCESS", ended
    assert ended["output_value"] == {
        "asked": "open",
        "response": {"host": "db1", "count": 1, "sure": True, "ok": True},
        "by": "admin",
    }
    assert ended["waiting_on"] == []
    assert api.ok("GET", "/message") == []
    assert [m["id"] for m in api.ok("GET", "/message", params={"status": "answered"})] == [
        message["id"]
    ]
    again = api.post(f"/message/{message['id']}/response", json={"host": "db2"})
    assert again.status_code == 409 and "answered already by 'admin'" in again.json()["message"]


def test_this_message_waits_by_default_and_reads_the_answer_by_key(api: ApiClient) -> None:
    api.create_flow(
        "request",
        textwrap.dedent(
            """
            def handler(system, this):
                answer = this.message('Which host?', request='Name the host')
                this.set_output('host', answer['string'])
                this.set_output('same', answer.get('response')['string'])
                this.set_output('by_get', answer.get('string'))
            """
        ),
    )
    ex = api.start("request")
    message = open_message(api, ex["id"])
    assert message["body"]["properties"]["string"]["label"] == "Name the host"
    api.ok("POST", f"/message/{message['id']}/response", json={"string": "edge-7\u0000"})
    assert api.wait_ended(ex["id"])["output_value"] == {
        "host": "edge-7\x00",
        "same": "edge-7\x00",
        "by_get": "edge-7\x00",
    }


def test_a_cancel_ends_the_wait_and_closes_the_message(api: ApiClient) -> None:
    api.create_flow(
        "waits",
        "def handler(system, this):\n    this.message('Proceed?', message='**ok?**')\n",
    )
    ex = api.start("waits")
    message = open_message(api, ex["id"])
    api.ok("POST", f"/execution/{ex['id']}/cancel")
    assert api.wait_ended(ex["id"], timeout_s=15)["status"] == "ENDED_CANCELLED"
    assert api.ok("GET", "/message") == []
    late = api.post(f"/message/{message['id']}/response", json={})
    assert late.status_code == 409, late.text
    assert "has ended (ENDED_CANCELLED)" in late.json()["message"]


def test_a_bad_form_and_a_timeout_raise_in_the_script(api: ApiClient) -> None:
    api.create_flow(
        "bad-form",
        textwrap.dedent(
            """
            import flow_api

            def handler(system, this):
                try:
                    system.message('x', body={'properties': {'a': {'element': 'slider'}}})
                except flow_api.InvalidInputError as exc:
                    this.set_output('form', str(exc))
                try:
                    system.message('y', request='?').wait(timeout=0.2)
                except flow_api.TimeoutExceededError as exc:
                    this.set_output('timeout', str(exc))
            """
        ),
    )
    out = api.run("bad-form")["output_value"]
    assert "element must be one of string, number" in out["form"], out
    assert "0.2" in out["timeout"], out


def test_an_unknown_message_is_404_and_the_api_needs_a_token(api: ApiClient) -> None:
    missing = api.post("/message/nope/response", json={})
    assert (
        missing.status_code == 404 and missing.json()["message"] == "message 'nope' does not exist"
    )
    assert api.client.get("/message").status_code == 401


def test_a_waiting_execution_holds_no_slot_of_max_running(
    api_with: Callable[..., ApiClient],
) -> None:
    """With one slot, a flow waiting for an answer lets another run; the control: a flow busy
    in its own process (time.sleep, not this.sleep, which waits in the engine) holds its
    slot, so the other stays QUEUED meanwhile."""
    api = api_with(max_running=1)
    api.create_flow("asks", "def handler(system, this):\n    this.message('Go?', message='go')\n")
    api.create_flow("quick", "def handler(system, this):\n    this.set_output('ran', True)\n")
    api.create_flow("sleeps", "import time\n\ndef handler(system, this):\n    time.sleep(3)\n")

    asking = api.start("asks")
    message = open_message(api, asking["id"])
    assert api.run("quick")["output_value"] == {"ran": True}

    api.ok("POST", f"/message/{message['id']}/response", json={})
    assert api.wait_ended(asking["id"])["status"] == "ENDED_SUCCESS"
    sleeping = api.start("sleeps")
    api.wait_status(sleeping["id"], "RUNNING")
    queued = api.start("quick")
    assert api.ok("GET", f"/execution/{queued['id']}")["status"] == "QUEUED"
    assert api.wait_ended(queued["id"])["status"] == "ENDED_SUCCESS"


def test_text_no_store_can_hold_is_refused_at_the_call(api: ApiClient) -> None:
    """NUL and lone surrogates, which PostgreSQL refuses, fail the call, not the store."""
    api.create_flow(
        "odd-text",
        textwrap.dedent(
            """
            import flow_api

            def handler(system, this):
                said = []
                for subject, label in (('a\\x00b', 'x'), ('\\ud800', 'x'), ('ok', 'l\\x00')):
                    try:
                        system.message(subject, body={'properties': {'f': {'element': 'string', 'label': label}}})
                        said.append('created')
                    except flow_api.InvalidInputError as exc:
                        said.append(str(exc))
                this.set_output('said', said)
            """
        ),
    )
    record = api.run("odd-text")
    assert record["status"] == "ENDED_SUCCESS", record
    said = record["output_value"]["said"]
    assert "NUL" in said[0] and "surrogate" in said[1] and "NUL" in said[2], said
    assert api.ok("GET", "/message") == []


def test_an_answer_is_announced_to_other_processes_by_notify(
    api: ApiClient, database_url: str
) -> None:
    """On PostgreSQL the answer's event goes out by NOTIFY at its commit, so that a waiting
    execution in another process wakes at once (its poll is only the backstop); a bad answer,
    rolled back, announces nothing."""
    if not database_url.startswith("postgresql"):
        pytest.skip("NOTIFY is PostgreSQL's; SQLite has one process")
    heard: list[tuple[str, str]] = []
    listening = threading.Event()
    other = notices.Listener(
        database_url, "another process", lambda *event: heard.append(event), listening.set
    )
    other.start()
    try:
        assert listening.wait(30)
        api.create_flow(
            "asks", "def handler(system, this):\n    this.message('Go?', request='?')\n"
        )
        ex = api.start("asks")
        message = open_message(api, ex["id"])
        assert api.post(f"/message/{message['id']}/response", json={"x": 1}).status_code == 400
        api.ok("POST", f"/message/{message['id']}/response", json={"string": "go"})
        wait_until(lambda: ("message", message["id"]) in heard, "the answer's NOTIFY")
        assert heard.count(("message", message["id"])) == 1
        assert api.wait_ended(ex["id"])["status"] == "ENDED_SUCCESS"
    finally:
        other.stop()
