"""The REST API: its resources, the role rules, and a specific error for every bad input
with nothing half written."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.workspace import ADMIN_PASSWORD, ApiClient
from tether.store import users as user_rows

QUICK = "def handler(system, this):\n    this.set_output('ok', True)\n"
PASSWORD = "a-good-long-password"


def assert_error(answer: httpx.Response, status: int, kind: str | None = None) -> str:
    """The answer is an error of ``status`` with exactly the keys error and message."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    if kind is not None:
        assert body["error"] == kind, body
    return body["message"]


def make_user(api: ApiClient, name: str, role: str) -> ApiClient:
    """A new user with ``role``, logged in."""
    api.ok("POST", "/user", json={"name": name, "password": PASSWORD, "role": role})
    return ApiClient.login(api.client, name, PASSWORD)


def snapshot(api: ApiClient) -> dict[str, Any]:
    """Everything the list endpoints show, to compare before and after a refused request."""
    return {
        path: api.ok("GET", path) for path in ("/flow", "/execution", "/user", "/setting", "/file")
    }


# --- the open endpoints and OpenAPI ----------------------------------------------------------


def test_health_answers_without_a_token(app_client: Any) -> None:
    answer = app_client.get("/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_openapi_describes_every_resource(app_client: Any) -> None:
    answer = app_client.get("/openapi.json")
    assert answer.status_code == 200
    paths = answer.json()["paths"]
    for path in (
        "/api/latest/health",
        "/api/latest/auth/login",
        "/api/latest/flow",
        "/api/latest/flow/{name}",
        "/api/latest/execution",
        "/api/latest/execution/{execution_id}",
        "/api/latest/execution/{execution_id}/log",
        "/api/latest/execution/{execution_id}/cancel",
        "/api/latest/user",
        "/api/latest/user/{name}",
        "/api/latest/setting",
        "/api/latest/setting/{name}",
        "/api/latest/file",
        "/api/latest/file/{name}",
    ):
        assert path in paths, path


def test_unknown_endpoint_and_wrong_method_answer_json_errors(api: ApiClient) -> None:
    assert_error(api.get("/no-such-thing"), 404, "not_found")
    assert_error(api.request("PUT", "/flow"), 405)


# --- resources ------------------------------------------------------------------------------


def test_flows_are_created_read_listed_changed_and_deleted(api: ApiClient) -> None:
    created = api.ok("POST", "/flow", json={"name": "f one", "script": QUICK, "description": "d"})
    assert (created["name"], created["script"], created["description"]) == ("f one", QUICK, "d")
    assert api.ok("GET", "/flow/f one")["script"] == QUICK
    assert [f["name"] for f in api.ok("GET", "/flow")] == ["f one"]
    changed = api.ok("PATCH", "/flow/f one", json={"description": "new"})
    assert (changed["description"], changed["script"]) == ("new", QUICK)
    assert api.delete("/flow/f one").status_code == 204
    assert_error(api.get("/flow/f one"), 404, "not_found")
    assert api.ok("GET", "/flow") == []


def test_execution_keeps_its_script_after_the_flow_changes(api: ApiClient) -> None:
    api.create_flow("f", QUICK)
    record = api.run("f")
    api.ok("PATCH", "/flow/f", json={"script": "def handler(system, this):\n    pass\n"})
    assert api.ok("GET", f"/execution/{record['id']}")["script"] == QUICK


def test_executions_are_listed_with_filters_and_have_a_log(api: ApiClient) -> None:
    api.create_flow("ok", "def handler(system, this):\n    print('hi')\n")
    api.create_flow("bad", "def handler(system, this):\n    raise ValueError('x')\n")
    good = api.run("ok")
    bad = api.run("bad")
    assert good["status"] == "ENDED_SUCCESS" and bad["status"] == "ENDED_ERROR"
    listed = api.ok("GET", "/execution")
    assert {e["id"] for e in listed} == {good["id"], bad["id"]}
    by_flow = api.ok("GET", "/execution", params={"flow_name": "ok"})
    assert [e["id"] for e in by_flow] == [good["id"]]
    by_status = api.ok("GET", "/execution", params={"status": "ENDED_ERROR"})
    assert [e["id"] for e in by_status] == [bad["id"]]
    assert api.ok("GET", "/execution", params={"parent_id": good["id"]}) == []
    [entry] = api.ok("GET", f"/execution/{good['id']}/log")
    assert set(entry) >= {"time", "message", "fields"}
    assert entry["message"] == "hi"
    assert_error(api.get("/execution", params={"status": "DONE"}), 422)


def test_execution_record_has_the_documented_fields(api: ApiClient) -> None:
    api.create_flow("f", QUICK)
    record = api.start("f", input_value={"a": 1}, name="named")
    documented = {
        "id", "name", "flow_name", "status", "input_value", "output_value", "message",
        "parent_id", "script", "remote_workspace_name", "sync_config", "remote_execution_id",
        "created_at", "started_at", "ended_at",
    }  # fmt: skip
    assert documented <= set(record)
    assert (record["name"], record["input_value"]) == ("named", {"a": 1})
    assert record["status"] in ("QUEUED", "RUNNING", "ENDED_SUCCESS")
    ended = api.wait_ended(record["id"])
    assert (ended["status"], ended["output_value"]) == ("ENDED_SUCCESS", {"ok": True}), ended


def test_an_execution_started_with_run_false_waits_pending_until_run(api: ApiClient) -> None:
    api.create_flow("f", QUICK)
    pending = api.start("f", run=False)
    assert pending["status"] == "PENDING"
    assert api.ok("GET", f"/execution/{pending['id']}")["status"] == "PENDING"
    assert api.ok("POST", f"/execution/{pending['id']}/run")["status"] in ("QUEUED", "RUNNING")
    assert api.wait_ended(pending["id"])["status"] == "ENDED_SUCCESS"


def test_unknown_execution_is_404_everywhere(api: ApiClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for method, path in (
        ("GET", f"/execution/{missing}"),
        ("GET", f"/execution/{missing}/log"),
        ("POST", f"/execution/{missing}/cancel"),
    ):
        assert missing in assert_error(api.request(method, path), 404, "not_found")


def test_settings_are_created_read_changed_and_deleted(api: ApiClient) -> None:
    created = api.ok("POST", "/setting", json={"name": "s", "value": {"a": [1, 2]}})
    assert created == {"name": "s", "value": {"a": [1, 2]}}
    assert api.ok("GET", "/setting/s")["value"] == {"a": [1, 2]}
    assert api.ok("PATCH", "/setting/s", json={"value": 3})["value"] == 3
    assert api.ok("GET", "/setting") == [{"name": "s", "value": 3}]
    assert api.delete("/setting/s").status_code == 204
    assert_error(api.get("/setting/s"), 404, "not_found")
    assert_error(api.patch("/setting/s", json={"value": 1}), 404, "not_found")
    assert api.ok("GET", "/setting") == []


def test_files_are_stored_as_text_or_base64_and_deleted(api: ApiClient) -> None:
    api.ok("POST", "/file", json={"name": "a.txt", "content": "text"})
    raw = b"\x00\x01\xfe\xff"
    api.ok(
        "POST", "/file", json={"name": "b.bin", "content_base64": base64.b64encode(raw).decode()}
    )
    assert api.ok("GET", "/file/a.txt")["content"] == "text"
    binary = api.ok("GET", "/file/b.bin")
    assert base64.b64decode(binary["content_base64"]) == raw
    assert binary["content"] is None
    assert api.ok("GET", "/file") == [{"name": "a.txt", "size": 4}, {"name": "b.bin", "size": 4}]
    assert api.delete("/file/a.txt").status_code == 204
    assert_error(api.get("/file/a.txt"), 404, "not_found")
    assert_error(api.delete("/file/a.txt"), 404, "not_found")


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWRtaW46eA=="}],
    ids=["no-token", "bad-token", "not-bearer"],
)
def test_protected_endpoints_answer_401_without_a_valid_token(
    app_client: Any, headers: dict[str, str]
) -> None:
    for method, path in (
        ("GET", "/flow"),
        ("POST", "/flow"),
        ("GET", "/execution"),
        ("POST", "/execution"),
        ("GET", "/user"),
        ("GET", "/setting"),
        ("GET", "/file"),
        ("GET", "/auth/me"),
    ):
        answer = app_client.request(method, path, headers=headers, json={})
        assert "log in" in assert_error(answer, 401, "unauthenticated"), (method, path)


def test_login_with_a_wrong_password_is_refused(app_client: Any) -> None:
    answer = app_client.post("/auth/login", json={"user_name": "admin", "password": "wrong"})
    assert_error(answer, 401)
    answer = app_client.post("/auth/login", json={"user_name": "nobody", "password": "wrong"})
    assert_error(answer, 401)


def test_logout_revokes_the_token(api: ApiClient) -> None:
    other = ApiClient.login(api.client, "admin", ADMIN_PASSWORD)
    assert other.get("/auth/me").status_code == 200
    assert other.post("/auth/logout").status_code == 204
    assert_error(other.get("/auth/me"), 401)
    assert_error(other.get("/flow"), 401)
    assert api.get("/flow").status_code == 200  # the admin's other token still works


def test_disabling_a_user_stops_their_token_and_their_login(api: ApiClient) -> None:
    bob = make_user(api, "bob", "user")
    assert bob.get("/flow").status_code == 200
    api.ok("PATCH", "/user/bob", json={"is_enabled": False})
    assert_error(bob.get("/flow"), 401)
    answer = api.client.post("/auth/login", json={"user_name": "bob", "password": PASSWORD})
    assert_error(answer, 401)
    api.ok("PATCH", "/user/bob", json={"is_enabled": True})
    assert_error(bob.get("/flow"), 401)  # the old token stays revoked
    assert ApiClient.login(api.client, "bob", PASSWORD).get("/flow").status_code == 200


def test_a_role_change_applies_at_once_to_tokens_in_use(api: ApiClient) -> None:
    """Signed-in users are kept in memory; a change of role must not wait for a new token."""
    bob = make_user(api, "bob", "workspace_admin")
    assert bob.get("/user").status_code == 200
    api.ok("PATCH", "/user/bob", json={"role": "user"})
    assert_error(bob.get("/user"), 403)
    api.ok("DELETE", "/user/bob")
    assert_error(bob.get("/flow"), 401)


def test_a_password_change_revokes_old_tokens(api: ApiClient) -> None:
    bob = make_user(api, "bob", "user")
    api.ok("PATCH", "/user/bob", json={"password": "another-long-password"})
    assert_error(bob.get("/flow"), 401)
    ApiClient.login(api.client, "bob", "another-long-password")


def test_passwords_are_stored_with_a_slow_salted_hash(api: ApiClient, app_client: Any) -> None:
    make_user(api, "bob", "user")
    make_user(api, "ann", "user")
    with app_client.app.state.ctx.db.begin() as conn:
        hashes = [user_rows.get(conn, n).password_hash for n in ("bob", "ann")]
    assert all(h.startswith("scrypt$") and PASSWORD not in h for h in hashes)
    assert hashes[0] != hashes[1]  # same password, different salt


# --- roles ------------------------------------------------------------------------------------


def test_user_role_may_use_flows_executions_settings_and_files(api: ApiClient) -> None:
    bob = make_user(api, "bob", "user")
    bob.create_flow("mine", QUICK)
    assert bob.run("mine")["status"] == "ENDED_SUCCESS"
    bob.ok("POST", "/setting", json={"name": "s", "value": 1})
    bob.ok("POST", "/file", json={"name": "f", "content": "x"})
    assert bob.ok("GET", "/auth/me")["role"] == "user"


def test_user_role_gets_403_with_a_message_on_user_endpoints(api: ApiClient) -> None:
    bob = make_user(api, "bob", "user")
    before = snapshot(api)
    for answer in (
        bob.get("/user"),
        bob.post("/user", json={"name": "eve", "password": PASSWORD, "role": "user"}),
        bob.patch("/user/admin", json={"is_enabled": False}),
        bob.delete("/user/admin"),
    ):
        message = assert_error(answer, 403, "forbidden")
        assert "'user'" in message and "manage users" in message
    assert snapshot(api) == before


def test_workspace_admin_manages_users_but_not_organization_admins(api: ApiClient) -> None:
    boss = make_user(api, "boss", "workspace_admin")
    boss.create_flow("theirs", QUICK)
    assert boss.run("theirs")["status"] == "ENDED_SUCCESS"
    boss.ok("POST", "/user", json={"name": "carl", "password": PASSWORD, "role": "user"})
    boss.ok("POST", "/user", json={"name": "dora", "password": PASSWORD, "role": "workspace_admin"})
    boss.ok("PATCH", "/user/carl", json={"is_enabled": False})
    names = {u["name"] for u in boss.ok("GET", "/user")}
    assert names == {"admin", "boss", "carl", "dora", "tether-link"}
    before = snapshot(api)
    for answer in (
        boss.post(
            "/user", json={"name": "eve", "password": PASSWORD, "role": "organization_admin"}
        ),
        boss.patch("/user/carl", json={"role": "organization_admin", "is_enabled": True}),
        boss.patch("/user/admin", json={"is_enabled": False}),
        boss.patch("/user/admin", json={"password": "taken-over-password"}),
        boss.delete("/user/admin"),
    ):
        message = assert_error(answer, 403, "forbidden")
        assert "workspace_admin" in message
    assert snapshot(api) == before
    ApiClient.login(api.client, "admin", ADMIN_PASSWORD)  # the admin's password is intact
    boss.delete("/user/carl")
    assert {u["name"] for u in boss.ok("GET", "/user")} == {"admin", "boss", "dora", "tether-link"}


def test_organization_admin_may_create_organization_admins(api: ApiClient) -> None:
    second = make_user(api, "root2", "organization_admin")
    assert second.ok("GET", "/auth/me")["role"] == "organization_admin"
    second.ok("PATCH", "/user/admin", json={"role": "workspace_admin"})
    assert api.ok("GET", "/auth/me")["role"] == "workspace_admin"


def test_nobody_can_delete_themselves(api: ApiClient) -> None:
    assert "yourself" in assert_error(api.delete("/user/admin"), 409, "conflict")
    assert [u["name"] for u in api.ok("GET", "/user")] == ["admin", "tether-link"]


# --- bad input --------------------------------------------------------------------------------


def test_a_script_that_does_not_compile_is_refused_with_its_line(api: ApiClient) -> None:
    before = snapshot(api)
    script = "def handler(system, this):\n    x = 1\n    return x +\n"
    message = assert_error(api.post("/flow", json={"name": "f", "script": script}), 400)
    assert "line 3" in message and "syntax" in message.lower()
    assert snapshot(api) == before
    api.create_flow("f", QUICK)
    message = assert_error(api.patch("/flow/f", json={"script": "def handler(:\n"}), 400)
    assert "line 1" in message
    assert api.ok("GET", "/flow/f")["script"] == QUICK


@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("x = 1\n", "defines no handler"),
        ("def handler(system):\n    pass\n", "takes (system), but the engine passes 2"),
        ("def handler(a, b, c, d):\n    pass\n", "takes (a, b, c, d), but the engine passes 3"),
        ("async def handler(system, this):\n    pass\n", "async def"),
    ],
)
def test_a_flow_whose_handler_cannot_be_called_is_refused_with_what_to_write(
    api: ApiClient, script: str, says: str
) -> None:
    before = snapshot(api)
    answer = api.post("/flow", json={"name": "f", "script": script})
    message = assert_error(answer, 400, "handler_invalid")
    assert says in message and "def handler(system, this, inputs):" in message
    assert snapshot(api) == before
    api.create_flow("f", QUICK)
    assert_error(api.patch("/flow/f", json={"script": script}), 400, "handler_invalid")
    assert api.ok("GET", "/flow/f")["script"] == QUICK


@pytest.mark.parametrize(
    "script",
    [
        "def handler(system, this, inputs=None):\n    pass\n",
        "def handler(system, this, *more):\n    pass\n",
        "from json import loads as handler\n",  # bound otherwise: only running it can tell
    ],
)
def test_handlers_the_engine_can_call_are_saved(api: ApiClient, script: str) -> None:
    assert api.post("/flow", json={"name": "f", "script": script}).status_code == 201


def test_unknown_flow_names_answer_404_and_start_nothing(api: ApiClient) -> None:
    before = snapshot(api)
    message = assert_error(api.post("/execution", json={"flow_name": "ghost"}), 404, "not_found")
    assert "ghost" in message
    assert_error(api.get("/flow/ghost"), 404, "not_found")
    assert_error(api.patch("/flow/ghost", json={"description": "x"}), 404, "not_found")
    assert_error(api.delete("/flow/ghost"), 404, "not_found")
    assert snapshot(api) == before


@pytest.mark.parametrize(
    "path", ["/flow", "/execution", "/user", "/setting", "/file", "/auth/login"]
)
def test_malformed_json_is_400_malformed_json(api: ApiClient, path: str) -> None:
    before = snapshot(api)
    answer = api.post(path, content=b'{"name": "x", ', headers={"Content-Type": "application/json"})
    assert "JSON" in assert_error(answer, 400, "malformed_json")
    assert snapshot(api) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_is_413_and_writes_nothing(
    api_with: Callable[..., ApiClient], chunked: bool
) -> None:
    api = api_with(max_body_bytes=2000)
    before = snapshot(api)
    body = json.dumps({"name": "big", "script": "# " + "x" * 5000 + "\n" + QUICK}).encode()
    content: Any = iter([body[:1000], body[1000:]]) if chunked else body
    answer = api.post("/flow", content=content, headers={"Content-Type": "application/json"})
    assert "2000" in assert_error(answer, 413, "payload_too_large")
    assert snapshot(api) == before
    api.create_flow("small", QUICK)  # a body under the limit still works


def test_duplicate_names_answer_409(api: ApiClient) -> None:
    api.create_flow("f", QUICK)
    make_user(api, "bob", "user")
    before = snapshot(api)
    other = "def handler(system, this):\n    pass\n"
    message = assert_error(api.post("/flow", json={"name": "f", "script": other}), 409, "conflict")
    assert "'f'" in message and "already exists" in message
    answer = api.post("/user", json={"name": "bob", "password": "x" * 12, "role": "user"})
    assert "'bob'" in assert_error(answer, 409, "conflict")
    assert snapshot(api) == before
    ApiClient.login(api.client, "bob", PASSWORD)  # bob's password was not replaced


@pytest.mark.parametrize("value", [[1, 2], "text", 5, True])
def test_input_value_that_is_not_an_object_is_400(api: ApiClient, value: Any) -> None:
    api.create_flow("f", QUICK)
    before = snapshot(api)
    answer = api.post("/execution", json={"flow_name": "f", "input_value": value})
    assert "JSON object" in assert_error(answer, 400, "invalid_input")
    assert snapshot(api) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/flow", {"name": "f", "script": QUICK, "colour": "red"}),
        ("/execution", {"flow_name": "f", "inputs": {}}),
        ("/user", {"name": "u", "password": PASSWORD, "admin": True}),
        ("/setting", {"name": "s", "value": 1, "ttl": 3}),
        ("/file", {"name": "x", "content": "c", "mode": "0600"}),
    ],
)
def test_unknown_fields_are_422_naming_the_field(
    api: ApiClient, path: str, body: dict[str, Any]
) -> None:
    before = snapshot(api)
    unknown = (set(body) - {"name", "script", "flow_name", "password", "value", "content"}).pop()
    message = assert_error(api.post(path, json=body), 422, "invalid_input")
    assert unknown in message
    assert snapshot(api) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/flow", {"name": "bad/name", "script": QUICK}),
        ("/flow", {"script": QUICK}),
        ("/execution", {"flow_name": ""}),
        ("/execution", {"flow_name": "f", "max_runtime_s": -1}),
        ("/user", {"name": "u", "password": "short"}),
        ("/user", {"name": "u", "password": PASSWORD, "role": "superuser"}),
        ("/file", {"name": "x"}),
        ("/file", {"name": "x", "content_base64": "not base64!"}),
    ],
)
def test_invalid_values_are_refused_and_write_nothing(
    api: ApiClient, path: str, body: dict[str, Any]
) -> None:
    api.create_flow("f", QUICK)
    before = snapshot(api)
    answer = api.post(path, json=body)
    assert answer.status_code in (400, 422), answer.text
    assert_error(answer, answer.status_code)
    assert snapshot(api) == before
