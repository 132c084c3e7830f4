"""The sync config API: who may use it, what it refuses and why, and what it never reveals."""

from __future__ import annotations

import json
import stat
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient
from tether.link import keys
from tether.store import schema

REMOTE_URL = "https://hq.example.com/api/latest/sync_config/edge/sync"
QUICK_SCRIPT = "def handler(system, this):\n    this.save(output_value={'ok': True})\n"


@pytest.fixture(scope="module")
def own_key() -> rsa.RSAPrivateKey:
    return keys.generate_private_key(2048)


@pytest.fixture(scope="module")
def remote_key() -> rsa.RSAPrivateKey:
    return keys.generate_private_key(2048)


@pytest.fixture(scope="module")
def small_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def pkcs1_private(key: rsa.RSAPrivateKey) -> str:
    """The key as `openssl genrsa` writes it: 'BEGIN RSA PRIVATE KEY'."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def openssh_public(key: rsa.RSAPrivateKey) -> str:
    """The public half as one ssh-keygen .pub line."""
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return line.decode() + " admin@edge"


def new_config(
    own_key: rsa.RSAPrivateKey, remote_key: rsa.RSAPrivateKey, **fields: Any
) -> dict[str, Any]:
    return {
        "name": "edge",
        "own_private_key": keys.private_pem(own_key),
        "remote_public_key": keys.public_pem(remote_key),
        **fields,
    }


def login_as(api: ApiClient, name: str, role: str) -> ApiClient:
    password = f"password-of-{name}"
    api.ok("POST", "/user", json={"name": name, "password": password, "role": role})
    return ApiClient.login(api.client, name, password)


def assert_refused(answer: httpx.Response, status: int, *phrases: str) -> str:
    """The answer has ``status`` and a message holding every phrase; returns the message."""
    assert answer.status_code == status, answer.text
    message: str = answer.json()["message"]
    for phrase in phrases:
        assert phrase in message, message
    return message


# --- who may ------------------------------------------------------------------------------


def test_only_organization_admins_may_read_or_change_sync_configs(
    api: ApiClient, own_key: Any, remote_key: Any, subtests: Any
) -> None:
    api.ok("POST", "/sync_config", json=new_config(own_key, remote_key))
    calls = [
        ("GET", "/sync_config", {}),
        ("GET", "/sync_config/edge", {}),
        ("GET", "/sync_config/edge/status", {}),
        ("POST", "/sync_config", {"json": new_config(own_key, remote_key, name="mine")}),
        ("PATCH", "/sync_config/edge", {"json": {"enabled": False}}),
        ("DELETE", "/sync_config/edge", {}),
    ]
    for role in ("workspace_admin", "user"):
        other = login_as(api, f"a-{role}", role)
        for method, path, kwargs in calls:
            with subtests.test(role=role, call=f"{method} {path}"):
                answer = other.request(method, path, **kwargs)
                assert_refused(answer, 403, role, "ask an organization admin")
                assert "PRIVATE KEY" not in answer.text
    assert api.client.get("/sync_config").status_code == 401  # and no token at all
    assert [(c["name"], c["enabled"]) for c in api.ok("GET", "/sync_config")] == [("edge", True)]


# --- what it refuses ----------------------------------------------------------------------


def test_keys_are_checked_with_specific_messages(
    api: ApiClient, own_key: Any, remote_key: Any, small_key: Any, subtests: Any
) -> None:
    pem = keys.public_pem(remote_key)
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    cases = [
        ("own_private_key", "hello", "not a PEM private key"),
        ("remote_public_key", "not a key", "not a PEM or OpenSSH public key"),
        ("remote_public_key", pem.replace(pem.splitlines()[2] + "\n", ""), "damaged"),
        ("remote_public_key", pem[:-30], "cut off"),
        ("own_private_key", ec_pem, "EC, not RSA"),
        ("own_private_key", keys.private_pem(small_key), "1024 bits, fewer than the 2048"),
        ("remote_public_key", keys.public_pem(small_key), "1024 bits, fewer than the 2048"),
        ("remote_public_key", openssh_public(small_key), "1024 bits, fewer than the 2048"),
        ("remote_public_key", keys.private_pem(remote_key), "this is a private key"),
        ("remote_public_key", pkcs1_private(remote_key), "this is a private key"),
        ("own_private_key", keys.public_pem(own_key), "this is a public key"),
        ("own_private_key", openssh_public(own_key), "this is a public key"),
    ]
    for field, text, phrase in cases:
        with subtests.test(field=field, phrase=phrase):
            answer = api.post("/sync_config", json=new_config(own_key, remote_key, **{field: text}))
            assert_refused(answer, 400, f"{field} is not usable", phrase)
            assert "PRIVATE KEY" not in answer.text
    api.ok("POST", "/sync_config", json=new_config(own_key, remote_key))
    with subtests.test(case="a change is checked too"):
        answer = api.patch(
            "/sync_config/edge", json={"remote_public_key": keys.private_pem(own_key)}
        )
        assert_refused(answer, 400, "remote_public_key is not usable", "this is a private key")
    assert len(api.ok("GET", "/sync_config")) == 1


def test_remote_url_must_be_an_http_sync_url(
    api: ApiClient, own_key: Any, remote_key: Any, subtests: Any
) -> None:
    cases = [
        ("ftp://hq.example.com/api/latest/sync_config/edge/sync", "is not an http(s) URL"),
        ("hq.example.com/api/latest/sync_config/edge/sync", "is not an http(s) URL"),
        ("https:///api/latest/sync_config/edge/sync", "is not an http(s) URL"),
        (
            "https://hq.example.com/api/latest/sync_config/edge",
            "must end in /sync_config/<name>/sync",
        ),
        ("https://hq.example.com/", "must end in /sync_config/<name>/sync"),
        ("https://hq.example.com/api/latest/sync_config/edge/sync?x=1", "must end in"),
    ]
    for url, phrase in cases:
        with subtests.test(url=url):
            answer = api.post("/sync_config", json=new_config(own_key, remote_key, remote_url=url))
            assert_refused(answer, 400, "remote_url", phrase)
    config = api.ok(
        "POST", "/sync_config", json=new_config(own_key, remote_key, remote_url=REMOTE_URL)
    )
    assert config["remote_url"] == REMOTE_URL


def test_other_fields_are_checked_with_specific_messages(
    api: ApiClient, own_key: Any, remote_key: Any, subtests: Any
) -> None:
    broken_pem = (
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    )
    cases: list[tuple[dict[str, Any], int, tuple[str, ...]]] = [
        ({"ca_certificate": "not a certificate"}, 400, ("ca_certificate", "not a PEM certificate")),
        ({"ca_certificate": broken_pem}, 400, ("ca_certificate", "not a PEM certificate")),
        ({"sync_interval": -1}, 400, ("sync_interval:", "positive number of seconds")),
        ({"sync_interval": 0}, 400, ("sync_interval:", "positive number of seconds")),
        ({"colour": "blue"}, 422, ("colour",)),
        ({"remote_public_keys": []}, 422, ("remote_public_keys",)),
        ({"role": "boss"}, 422, ("role",)),
        ({"name": "a/b"}, 400, ("name", "letters, digits")),
        ({"enabled": None}, 422, ("enabled", "true or false")),
        ({"verify_ssl": None}, 422, ("verify_ssl", "true or false")),
        ({"send_all_executions": None}, 422, ("send_all_executions", "true or false")),
    ]
    for fields, status, phrases in cases:
        with subtests.test(fields=fields):
            answer = api.post("/sync_config", json=new_config(own_key, remote_key, **fields))
            assert_refused(answer, status, *phrases)
    for number in ("NaN", "Infinity", "-Infinity", "1e999"):
        with subtests.test(sync_interval=number):
            document = json.dumps(new_config(own_key, remote_key))[:-1]
            answer = api.post(
                "/sync_config",
                content=f'{document}, "sync_interval": {number}}}',
                headers={"Content-Type": "application/json"},
            )
            assert_refused(answer, 422, "sync_interval", "finite")
    assert api.ok("GET", "/sync_config") == []

    api.ok("POST", "/sync_config", json=new_config(own_key, remote_key))
    for fields, status, phrases in cases:
        fields = {k: v for k, v in fields.items() if k != "name"}
        if fields:
            with subtests.test(change=fields):
                assert_refused(api.patch("/sync_config/edge", json=fields), status, *phrases)
    config = api.ok("GET", "/sync_config/edge")
    assert (config["enabled"], config["verify_ssl"], config["sync_interval"]) == (True, True, None)


# --- what it accepts, shows and hides -----------------------------------------------------


def test_answers_show_fingerprints_and_own_public_key_but_never_a_key_they_hold(
    api: ApiClient, own_key: Any, remote_key: Any
) -> None:
    """Keys from openssl (PKCS#1) and ssh-keygen are read; answers show only fingerprints."""
    remote_body = "".join(keys.public_pem(remote_key).splitlines()[1:-1])
    created = api.post(
        "/sync_config",
        json=new_config(
            own_key,
            remote_key,
            own_private_key=pkcs1_private(own_key),
            remote_public_key=[openssh_public(remote_key), keys.public_pem(own_key)],
        ),
    )
    answers = [
        created,
        api.get("/sync_config/edge"),
        api.get("/sync_config"),
        api.patch("/sync_config/edge", json={"sync_interval": 5}),
        api.get("/sync_config/edge/status"),
    ]
    for answer in answers:
        assert answer.is_success, answer.text
        assert "PRIVATE KEY" not in answer.text
        assert remote_body[:64] not in answer.text.replace("\\n", "")
        assert "ssh-rsa" not in answer.text
    config = answers[1].json()
    assert config["own_public_key"] == keys.public_pem(own_key)
    assert config["own_key_fingerprint"] == keys.fingerprint(own_key.public_key())
    assert config["own_key_fingerprint"].startswith("SHA256:")
    assert len(config["own_key_fingerprint"]) == len("SHA256:") + 43
    assert config["remote_key_fingerprints"] == [
        keys.fingerprint(remote_key.public_key()),
        keys.fingerprint(own_key.public_key()),
    ]
    assert "own_private_key" not in config and "remote_public_key" not in config
    assert answers[3].json()["sync_interval"] == 5


def test_private_key_is_encrypted_at_rest_under_a_private_secret_file(
    api: ApiClient, app_client: TestClient, settings: Any, own_key: Any, remote_key: Any
) -> None:
    api.ok("POST", "/sync_config", json=new_config(own_key, remote_key))
    pem_body = "".join(keys.private_pem(own_key).splitlines()[1:-1])
    db = app_client.app.state.ctx.db  # type: ignore[attr-defined]
    with db.begin() as conn:
        row = dict(conn.execute(sa.select(schema.sync_config)).one()._mapping)
    stored = json.dumps(row, default=str)
    assert row["own_private_key"]
    assert "PRIVATE KEY" not in stored
    assert pem_body[:40] not in stored and pem_body[-40:] not in stored
    # what is stored still yields the key: the API derives the public key from it
    assert api.ok("GET", "/sync_config/edge")["own_public_key"] == keys.public_pem(own_key)

    secret_file = settings.resolved_secret_file
    assert secret_file.parent == settings.data_dir
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(secret_file.read_bytes().strip()) >= 32


def test_role_defaults_to_controlling_with_a_remote_url(
    api: ApiClient, own_key: Any, remote_key: Any, subtests: Any
) -> None:
    cases = [
        ({}, "controlled"),
        ({"remote_url": REMOTE_URL}, "controlling"),
        ({"remote_url": REMOTE_URL, "role": "controlled"}, "controlled"),
        ({"role": "controlling"}, "controlling"),
    ]
    for fields, role in cases:
        with subtests.test(fields=fields):
            config = api.ok("POST", "/sync_config", json=new_config(own_key, remote_key, **fields))
            assert config["role"] == role
            assert config["remote_url"] == fields.get("remote_url")
            changed = api.ok("PATCH", "/sync_config/edge", json={"sync_interval": 10})
            assert changed["role"] == role, "a change of other fields keeps the role"
            api.ok("DELETE", "/sync_config/edge")


def test_create_read_change_delete(api: ApiClient, own_key: Any, remote_key: Any) -> None:
    config = api.ok("POST", "/sync_config", json=new_config(own_key, remote_key))
    assert config | {"own_public_key": None, "own_key_fingerprint": None} == {
        "name": "edge",
        "enabled": True,
        "remote_url": None,
        "role": "controlled",
        "ca_certificate": None,
        "verify_ssl": True,
        "send_all_executions": False,
        "accepted_scripts": "any",
        "run_as": None,
        "effective_run_as": "tether-link",
        "allow_onward_remote": False,
        "max_running": None,
        "sync_interval": None,
        "proxy_url": None,
        "own_public_key": None,
        "own_key_fingerprint": None,
        "next_own_public_key": None,
        "next_own_key_fingerprint": None,
        "remote_key_fingerprints": [keys.fingerprint(remote_key.public_key())],
        "state": "connecting",
        "notices": [],
    }
    changed = api.ok(
        "PATCH",
        "/sync_config/edge",
        json={
            "enabled": False,
            "verify_ssl": False,
            "sync_interval": 2.5,
            "remote_url": REMOTE_URL,
        },
    )
    assert (changed["enabled"], changed["verify_ssl"], changed["sync_interval"]) == (
        False,
        False,
        2.5,
    )
    assert (changed["state"], changed["remote_url"]) == ("disabled", REMOTE_URL)
    again = api.ok(
        "PATCH",
        "/sync_config/edge",
        json={"enabled": True, "sync_interval": None, "remote_url": ""},
    )
    assert (again["enabled"], again["sync_interval"], again["state"]) == (True, None, "connecting")
    assert again["remote_url"] is None
    answer = api.post("/sync_config", json=new_config(own_key, remote_key))
    assert_refused(answer, 409, "sync config", "edge")
    api.ok("DELETE", "/sync_config/edge")
    assert api.ok("GET", "/sync_config") == []
    for method, path in [
        ("GET", "/sync_config/edge"),
        ("PATCH", "/sync_config/edge"),
        ("DELETE", "/sync_config/edge"),
        ("GET", "/sync_config/edge/status"),
    ]:
        kwargs = {"json": {"enabled": False}} if method == "PATCH" else {}
        assert_refused(api.request(method, path, **kwargs), 404, "edge")


# --- status -------------------------------------------------------------------------------


def test_status_of_a_new_listener(api: ApiClient, own_key: Any, remote_key: Any) -> None:
    api.ok("POST", "/sync_config", json=new_config(own_key, remote_key))
    status = api.ok("GET", "/sync_config/edge/status")
    assert status == {
        "name": "edge",
        "state": "connecting",
        "last_error": None,
        "failing_since": None,
        "last_exchange_at": None,
        "direction": "listener",
        "role": "controlled",
        "remote_workspace": None,
        "remote_role": None,
        "remote_name": None,
        "outbox_depth": 0,
        "sent_seq": 0,
        "acked_seq": 0,
        "applied_seq": 0,
        "messages_received": {"received": 0, "repeats": 0},
        "backfill": {"enabled": False, "total": None, "done": 0, "is_complete": False},
    }
    api.ok("PATCH", "/sync_config/edge", json={"enabled": False})
    assert api.ok("GET", "/sync_config/edge/status")["state"] == "disabled"


def test_status_shows_outbox_depth_sequence_and_backfill(
    api: ApiClient, own_key: Any, remote_key: Any
) -> None:
    """Past executions mirrored to a side that never connects wait in the outbox, counted."""
    api.create_flow("quick", QUICK_SCRIPT)
    for _ in range(3):
        assert api.run("quick")["status"] == "ENDED_SUCCESS"
    api.ok(
        "POST",
        "/sync_config",
        json=new_config(own_key, remote_key, role="controlling", send_all_executions=True),
    )

    def backfilled() -> dict[str, Any]:
        status: dict[str, Any] = api.ok("GET", "/sync_config/edge/status")
        assert status["backfill"]["is_complete"], status
        return status

    status = wait_until(backfilled, "the backfill to complete", 15)
    assert status["backfill"] == {"enabled": True, "total": 3, "done": 3, "is_complete": True}
    assert status["outbox_depth"] == 3
    assert status["sent_seq"] == 3
    assert (status["acked_seq"], status["applied_seq"]) == (0, 0)
    assert status["role"] == "controlling" and status["direction"] == "listener"


def test_notices_say_when_a_setting_does_not_do_here_what_it_seems_to(
    api: ApiClient, own_key: Any, remote_key: Any
) -> None:
    listening = api.ok("POST", "/sync_config", json=new_config(own_key, remote_key))
    assert listening["notices"] == []
    paced = api.ok("PATCH", "/sync_config/edge", json={"sync_interval": 30})
    assert len(paced["notices"]) == 1
    assert "paces only the side that dials" in paced["notices"][0]
    both = api.ok("PATCH", "/sync_config/edge", json={"send_all_executions": True})
    assert "send_all_executions does nothing on a controlled" in both["notices"][1]
    dialing = new_config(own_key, remote_key, name="hq", remote_url=REMOTE_URL, sync_interval=30)
    answer = api.ok("POST", "/sync_config", json={**dialing, "send_all_executions": True})
    assert answer["notices"] == []  # the dialer's pace, and the controlling side's copies
