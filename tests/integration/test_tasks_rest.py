"""this.task('REST') and named REST connectors, against a real HTTPS server on loopback."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import trustme

from tests.integration.connector_servers import basic, https_server
from tests.support.workspace import ApiClient


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with https_server(ca) as served:
        yield served


def flow(api: ApiClient, name: str, script: str) -> None:
    api.create_flow(name, textwrap.dedent(script))


def child_of(api: ApiClient, parent_id: str) -> dict[str, Any]:
    children: list[dict[str, Any]] = api.ok("GET", "/execution", params={"parent_id": parent_id})
    assert len(children) == 1, children
    return children[0]


def test_a_rest_task_sends_the_request_and_returns_the_answer(
    api: ApiClient, server: Any, ca: trustme.CA
) -> None:
    url, seen = server
    api.set_setting("ca", ca.cert_pem.bytes().decode())
    flow(
        api,
        "caller",
        f"""
        def handler(system, this):
            task = this.task(
                'REST',
                url='{url}/items',
                method='post',
                params={{'page': 2}},
                json={{'a': 1}},
                bearer_token='t0ken-s3cret',
                headers={{'X-Trace': 'abc'}},
                ca_certificate=system.setting('ca').get('value'),
            )
            this.save(output_value=task.get('output_value'))
        """,
    )
    parent = api.run("caller")
    assert parent["status"] == "ENDED_SUCCESS", parent
    out = parent["output_value"]
    assert out["status_code"] == 200
    assert out["headers"]["x-echo"] == "yes"
    assert out["json"]["path"] == "/items?page=2"
    assert json.loads(out["text"])["method"] == "POST"
    [request] = seen
    assert request["headers"]["authorization"] == "Bearer t0ken-s3cret"
    assert request["headers"]["x-trace"] == "abc"
    assert json.loads(request["body"]) == {"a": 1}

    task = child_of(api, parent["id"])
    assert task["name"] == "REST"
    assert task["flow_name"] is None
    assert "built-in task REST" in task["script"]
    assert task["input_value"]["bearer_token"] == "********"
    assert task["input_value"]["headers"] == {"X-Trace": "abc"}
    # (its outputs hold the token: the echo server answers with the headers it received)
    shown = {k: v for k, v in task.items() if k != "output_value"}
    assert "t0ken-s3cret" not in json.dumps(shown) + " ".join(api.log(task["id"]))
    assert any("POST" in line and "-> 200" in line for line in api.log(task["id"]))


def test_basic_auth_and_form_data(api: ApiClient, server: Any, ca: trustme.CA) -> None:
    url, seen = server
    api.set_setting("ca", ca.cert_pem.bytes().decode())
    flow(
        api,
        "form",
        f"""
        def handler(system, this):
            task = this.task('REST', url='{url}/form', method='PUT', data={{'x': 'y'}},
                             username='ann', password='pw-1',
                             ca_certificate=system.setting('ca').get('value'))
            this.set_output('status', task.get('output_value')['status_code'])
        """,
    )
    parent = api.run("form")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert seen[0]["headers"]["authorization"] == basic("ann", "pw-1")
    assert seen[0]["body"] == "x=y"
    assert child_of(api, parent["id"])["input_value"]["password"] == "********"


def test_an_error_answer_fails_the_task_and_the_waiting_parent(
    api: ApiClient, server: Any, ca: trustme.CA
) -> None:
    url, _ = server
    api.set_setting("ca", ca.cert_pem.bytes().decode())
    flow(
        api,
        "failing",
        f"""
        import flow_api

        def handler(system, this):
            try:
                this.task('REST', url='{url}/status/404',
                          ca_certificate=system.setting('ca').get('value'))
            except flow_api.DependencyFailedError as exc:
                this.set_output('error', str(exc))
            task = this.task('REST', url='{url}/status/503', raise_for_status=False,
                             ca_certificate=system.setting('ca').get('value'))
            this.set_output('accepted', task.get('output_value')['status_code'])
        """,
    )
    parent = api.run("failing")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert "ENDED_ERROR" in parent["output_value"]["error"]
    assert "answered 404 Not Found" in parent["output_value"]["error"]
    assert parent["output_value"]["accepted"] == 503
    failed = [
        e
        for e in api.ok("GET", "/execution", params={"parent_id": parent["id"]})
        if e["status"] == "ENDED_ERROR"
    ]
    assert len(failed) == 1
    assert failed[0]["message"].startswith("REST task failed: GET ")
    assert "answered 404" in failed[0]["message"]
    assert failed[0]["output_value"]["status_code"] == 404


def test_an_unknown_ca_fails_with_the_tls_reason(api: ApiClient, server: Any) -> None:
    url, seen = server
    flow(
        api,
        "untrusting",
        f"""
        def handler(system, this):
            this.task('REST', url='{url}/')
        """,
    )
    parent = api.run("untrusting")
    assert parent["status"] == "ENDED_ERROR"
    assert "TLS handshake failed" in parent["message"]
    assert "ca_certificate" in parent["message"]
    assert seen == []


def test_an_unknown_input_or_type_is_refused_by_name(api: ApiClient) -> None:
    flow(
        api,
        "misspelt",
        """
        import flow_api

        def handler(system, this):
            try:
                this.task('REST', url='https://127.0.0.1:1/', metod='GET')
            except flow_api.DependencyFailedError as exc:
                this.set_output('input', str(exc))
            try:
                this.task('FTP', url='ftp://x')
            except flow_api.InvalidInputError as exc:
                this.set_output('type', str(exc))
        """,
    )
    out = api.run("misspelt")["output_value"]
    assert "unknown input 'metod'" in out["input"]
    assert "'FTP' is not a task type" in out["type"]


def test_a_named_connector_holds_the_host_and_the_credentials(
    api: ApiClient, server: Any, ca: trustme.CA
) -> None:
    url, seen = server
    created = api.ok(
        "POST",
        "/connector",
        json={
            "name": "billing-api",
            "type": "REST",
            "host": url + "/api",
            "value": {"ca_certificate": ca.cert_pem.bytes().decode()},
            "credentials": {"bearer_token": "connector-s3cret"},
        },
    )
    assert created["credentials"] == ["bearer_token"]
    listed = api.ok("GET", "/connector")
    assert "connector-s3cret" not in json.dumps(listed)
    flow(
        api,
        "connected",
        """
        import flow_api

        def handler(system, this):
            task = this.connect('billing-api', url='invoices', params={'n': 1})
            this.set_output('path', task.get('output_value')['json']['path'])
            try:
                this.connect('billing-api', host='https://elsewhere.example')
            except flow_api.InvalidInputError as exc:
                this.set_output('override', str(exc))
        """,
    )
    parent = api.run("connected")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert parent["output_value"]["path"] == "/api/invoices?n=1"
    assert "connector 'billing-api' sets host" in parent["output_value"]["override"]
    assert seen[0]["headers"]["authorization"] == "Bearer connector-s3cret"
    task = child_of(api, parent["id"])
    assert task["name"] == "billing-api"
    assert task["input_value"] == {
        "connector": "billing-api",
        "url": "invoices",
        "params": {"n": 1},
    }


def test_connectors_are_for_admins_and_credentials_are_encrypted_at_rest(
    api: ApiClient, settings: Any
) -> None:
    api.ok(
        "POST",
        "/connector",
        json={"name": "mail", "type": "SMTP", "credentials": {"password": "plain-pw"}},
    )
    api.ok("POST", "/user", json={"name": "u1", "password": "a-long-password", "role": "user"})
    user = ApiClient.login(api.client, "u1", "a-long-password")
    assert user.get("/connector").status_code == 403
    bad = api.post("/connector", json={"name": "x", "type": "FTP"})
    assert bad.status_code == 422, bad.text
    engine = sa.create_engine(
        settings.database_url.replace("postgresql://", "postgresql+psycopg://")
    )
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT credentials FROM connector")).scalar_one()
    engine.dispose()
    assert "plain-pw" not in stored
    changed = api.ok("PATCH", "/connector/mail", json={"credentials": {}})
    assert changed["credentials"] == []
    api.ok("DELETE", "/connector/mail")
    assert api.get("/connector/mail").status_code == 404
