"""Every flow_api request is authorised as the execution's owner, on SQLite and PostgreSQL.

Each attack runs beside its control: the same flow succeeds where the owner may act, or
where the defence is switched off, so that a refusal cannot pass for a broken test.
"""

from __future__ import annotations

import hashlib
import textwrap
from typing import Any

import pytest

from tests.support.workspace import ApiClient
from tether.runner import requests

PASSWORD = "a-password-for-tests"
# Reads a setting in a loop: every read is a request the owner must be allowed to make.
PROBING = """
import flow_api


def handler(system, this, inputs):
    for _ in range(inputs["rounds"]):
        try:
            system.setting("probe").exists()
        except flow_api.PermissionDenied as exc:
            this.error(f"refused: {exc}")
        this.sleep(0.02)
    this.success("every probe was answered")
"""
GATED = """
def handler(system, this):
    while not system.setting("go").exists():
        this.sleep(0.02)
"""
MEDDLING = """
import flow_api


def handler(system, this):
    other = this.flow("gated", wait=False)
    this.set_output("own", "saved")
    try:
        system.execution(other.id).save(output_value={"forged": True})
    except flow_api.PermissionDenied as exc:
        this.set_output("refused", str(exc))
    this.set_output("other", other.id)
"""
PARENT = """
def handler(system, this):
    child = this.flow("gated", wait=False)
    this.save(output_value={"child": child.id})
"""


def user_api(api: ApiClient, name: str) -> ApiClient:
    api.ok("POST", "/user", json={"name": name, "password": PASSWORD, "role": "user"})
    return ApiClient.login(api.client, name, PASSWORD)


def flows(api: ApiClient, **scripts: str) -> None:
    for name, script in scripts.items():
        api.create_flow(name, textwrap.dedent(script))


def test_the_starter_owns_an_execution_and_its_children_inherit_it(api: ApiClient) -> None:
    ann = user_api(api, "ann")
    flows(api, gated=GATED, parent=PARENT)
    parent = ann.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    assert parent["owner"] == "ann"
    child = api.ok("GET", f"/execution/{parent['output_value']['child']}")
    assert child["owner"] == "ann", "a child runs with its parent's owner, not the admin's"
    assert child["script_sha256"] == hashlib.sha256(textwrap.dedent(GATED).encode()).hexdigest()
    api.set_setting("go", True)
    assert api.wait_ended(child["id"])["status"] == "ENDED_SUCCESS"


def test_a_disabled_owner_flow_gets_permission_denied(api: ApiClient) -> None:
    ann = user_api(api, "ann")
    flows(api, probing=PROBING)
    control = ann.run("probing", input_value={"rounds": 3})
    assert control["status"] == "ENDED_SUCCESS", control["message"]

    running = ann.start("probing", input_value={"rounds": 100_000})
    api.wait_status(running["id"], "RUNNING")
    api.ok("PATCH", "/user/ann", json={"is_enabled": False})
    ended = api.wait_ended(running["id"])
    assert ended["status"] == "ENDED_ERROR"
    assert ended["message"].startswith("refused: ")
    assert "user 'ann'" in ended["message"] and "disabled" in ended["message"]


def test_a_deleted_owner_flow_gets_permission_denied(api: ApiClient) -> None:
    ann = user_api(api, "ann")
    flows(api, probing=PROBING)
    running = ann.start("probing", input_value={"rounds": 100_000})
    api.wait_status(running["id"], "RUNNING")
    api.ok("DELETE", "/user/ann")
    ended = api.wait_ended(running["id"])
    assert ended["status"] == "ENDED_ERROR"
    assert "no longer exists" in ended["message"]


def run_meddling(api: ApiClient) -> tuple[dict[str, Any], dict[str, Any]]:
    flows(api, gated=GATED, meddling=MEDDLING)
    meddler = api.run("meddling")
    assert meddler["status"] == "ENDED_SUCCESS", meddler["message"]
    other = api.ok("GET", f"/execution/{meddler['output_value']['other']}")
    api.set_setting("go", True)
    api.wait_ended(other["id"])
    return meddler, other


def test_a_flow_cannot_save_outputs_on_another_execution(api: ApiClient) -> None:
    meddler, other = run_meddling(api)
    assert meddler["output_value"]["own"] == "saved", "its own outputs are its to change"
    assert "may change only its own execution" in meddler["output_value"]["refused"]
    assert other["output_value"] == {}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_with_the_own_execution_check_off_the_same_flow_forges_outputs(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control for the test above: it would see a forged output."""
    monkeypatch.setattr(requests.Requests, "_check_own", lambda *_args: None)
    meddler, other = run_meddling(api)
    assert "refused" not in meddler["output_value"]
    assert other["output_value"] == {"forged": True}


def test_the_built_in_link_account_cannot_log_in_or_be_deleted(api: ApiClient) -> None:
    (account,) = [u for u in api.ok("GET", "/user") if u["name"] == "tether-link"]
    assert (account["role"], account["is_enabled"]) == ("user", True)
    for password in ("!", "x", "tether-link"):  # "!" is the stored hash itself
        answer = api.client.post(
            "/auth/login", json={"user_name": "tether-link", "password": password}
        )
        assert answer.status_code == 401, answer.text
    answer = api.delete("/user/tether-link")
    assert answer.status_code == 409 and "disable it instead" in answer.json()["message"]
