"""The connectors pages in real Chromium against a real `tether serve`: admins list, create,
edit and delete connectors; credentials are written, never shown or sent back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.conftest import OpenPage, _stop, screenshot
from tests.support.workspace import ApiClient, ServedWorkspace

pytestmark = pytest.mark.timeout(300)

PASSWORD = "s3cret-pass-81f2"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-7c1d\n-----END OPENSSH PRIVATE KEY-----"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWorkspace]:
    served = ServedWorkspace("conn", tmp_path_factory.mktemp("connectors") / "conn")
    try:
        yield served.start()
    finally:
        _stop(served)


@pytest.fixture
def api(workspace: ServedWorkspace) -> Iterator[ApiClient]:
    client = workspace.client()
    yield client
    client.client.close()


def test_admins_create_edit_and_delete_connectors_without_seeing_credentials(
    new_page: OpenPage, workspace: ServedWorkspace, api: ApiClient
) -> None:
    page = new_page(workspace)
    page.click("nav a[href='/ui/connectors']")
    page.click("text=New connector")
    page.fill("#name", "box")
    page.select_option("#type", "SSH")
    page.fill("#host", "10.0.0.5")
    page.fill("#value", '{"port": 2222, "user": ')  # not JSON: refused
    page.fill("#credential_name_0", "password")
    page.fill("#credential_value_0", PASSWORD)
    page.fill("#credential_name_1", "key")
    page.fill("#credential_value_1", KEY)
    page.click("#connector-form button[value=save]")
    assert "not valid JSON" in page.locator("#value-error").inner_text()
    assert "enter the credentials again" in page.locator("#credentials-error").inner_text()
    # The control: what the server sends back in a textarea is in page.content().
    assert '{"port": 2222, "user": ' in page.content()
    assert PASSWORD not in page.content() and "b3BlbnNzaC1rZXkt" not in page.content()
    assert page.input_value("#credential_name_0") == "password"  # names are kept, values not
    assert api.get("/connector/box").status_code == 404

    page.fill("#value", '{"port": 2222, "user": "deploy"}')
    page.fill("#credential_value_0", PASSWORD)
    page.fill("#credential_value_1", KEY)
    page.click("#connector-form button[value=save]")
    page.wait_for_url("**/ui/connectors/box?saved=1")
    assert PASSWORD not in page.content() and "b3BlbnNzaC1rZXkt" not in page.content()
    stored = page.locator("#stored-credentials").inner_text()
    assert "key: ********" in stored and "password: ********" in stored
    assert page.input_value("#credential_value_0") == ""
    record = api.ok("GET", "/connector/box")
    assert record["type"] == "SSH" and record["host"] == "10.0.0.5"
    assert record["value"] == {"port": 2222, "user": "deploy"}
    assert record["credentials"] == ["key", "password"]
    screenshot(page, "connector")

    page.fill("#host", "10.0.0.6")  # credentials left empty: kept
    page.click("#connector-form button[value=save]")
    page.wait_for_url("**/ui/connectors/box?saved=1")
    assert api.ok("GET", "/connector/box")["credentials"] == ["key", "password"]
    assert api.ok("GET", "/connector/box")["host"] == "10.0.0.6"

    page.fill("#credential_name_0", "password")
    page.fill("#credential_value_0", "another-one")  # replaces all of them
    page.click("#connector-form button[value=save]")
    page.wait_for_url("**/ui/connectors/box?saved=1")
    assert api.ok("GET", "/connector/box")["credentials"] == ["password"]

    page.goto("/ui/connectors")
    row = page.locator("tr[data-connector='box']")
    assert "password: ********" in row.inner_text() and "10.0.0.6" in row.inner_text()
    screenshot(page, "connectors")

    page.click("tr[data-connector='box'] a")
    page.check("#clear_credentials")
    page.click("#connector-form button[value=save]")
    page.wait_for_url("**/ui/connectors/box?saved=1")
    assert api.ok("GET", "/connector/box")["credentials"] == []

    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_url("**/ui/connectors?deleted=box")
    assert page.locator("tr[data-connector='box']").count() == 0
    assert api.get("/connector/box").status_code == 404


def test_a_user_without_the_admin_role_cannot_reach_connectors(
    new_page: OpenPage, workspace: ServedWorkspace, api: ApiClient
) -> None:
    api.ok("POST", "/user", json={"name": "dev", "password": "dev-password-1", "role": "user"})
    api.ok(
        "POST",
        "/connector",
        json={"name": "api", "type": "REST", "credentials": {"token": "t-9f3"}},
    )
    page = new_page(workspace, user="dev", password="dev-password-1")
    assert page.locator("header nav a", has_text="Connectors").count() == 0
    for path in ("/ui/connectors", "/ui/connectors/api", "/ui/connectors/new"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 403, path
    assert "t-9f3" not in page.content()
    api.ok(
        "POST",
        "/user",
        json={"name": "wsa", "password": "wsa-password-1", "role": "workspace_admin"},
    )
    admin = new_page(workspace, user="wsa", password="wsa-password-1")
    admin.click("nav a[href='/ui/connectors']")
    assert admin.locator("tr[data-connector='api']").is_visible()
    assert "t-9f3" not in admin.content()
