"""The web UI in a real browser against real `tether serve` processes: flows, executions,
links between two workspaces made through their forms, and role rules.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import OpenPage, screenshot, wait_rendered_ended
from tests.support.workspace import ADMIN_PASSWORD, ServedWorkspace

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

Workspaces = dict[str, ServedWorkspace]

pytestmark = pytest.mark.timeout(300)  # the first test may install Chromium from Debian

BROKEN_SCRIPT = """def handler(system, this, inputs):
    this.log("starting"
"""
LOGGING_SCRIPT = """import time


def handler(system, this, inputs):
    this.log("starting", who=inputs["who"])
    time.sleep(1.5)
    this.log("halfway")
    time.sleep(2)
    this.save(output_value={"greeting": "hello " + inputs["who"]})
"""
ENDLESS_SCRIPT = """import time


def handler(system, this):
    for i in range(10000):
        this.log(f"tick {i}")
        time.sleep(0.3)
"""
GREET_SCRIPT = """def handler(system, this, inputs):
    this.log("greeting from the edge", who=inputs["who"])
    this.save(output_value={"greeting": "hello " + inputs["who"]})
"""
PARENT_SCRIPT = """def handler(system, this):
    child = this.flow("greet", remote_workspace_name="edge", who="hub")
    this.save(output_value={"remote": child.get("output_value")})
"""
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def create_flow(page: Page, name: str, script: str) -> None:
    page.goto("/ui/flows/new")
    page.fill("#name", name)
    page.fill("#script", script)
    page.click("#new-flow button[type=submit]")
    page.wait_for_url(f"**/ui/flows/{name}?saved=1")


def run_flow(page: Page, flow: str, inputs: str = "{}", remote: str = "") -> str:
    """Run ``flow`` from its page; return the new execution's id."""
    page.goto(f"/ui/flows/{flow}")
    page.fill("#input_value", inputs)
    page.select_option("#remote_workspace_name", remote)
    page.click("#run button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/executions/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def wait_status(page: Page, status: str, timeout_ms: int = 20_000) -> None:
    page.wait_for_function(
        "s => document.getElementById('ex-status').textContent === s",
        arg=status,
        timeout=timeout_ms,
    )
    if status.startswith("ENDED_"):
        wait_rendered_ended(page, timeout_ms)


def status_of(page: Page, path: str) -> int:
    """The HTTP status of the page at ``path``."""
    answer = page.goto(path)
    assert answer is not None
    return answer.status


def test_login_refuses_a_wrong_password_and_keeps_the_name(
    browser: Browser, workspaces: Workspaces
) -> None:
    context = browser.new_context(base_url=workspaces["hub"].url)
    page = context.new_page()
    page.goto("/ui/executions")
    assert "/ui/login" in page.url
    page.fill("#user_name", "admin")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert page.input_value("#user_name") == "admin"
    assert "wrong" in page.inner_text("#password-error")
    screenshot(page, "login")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/executions")  # back where the user was going
    cookie = next(c for c in context.cookies() if is_session_cookie(c["name"]))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click("text=Log out")
    page.wait_for_url("**/ui/login")
    page.goto("/ui/flows")
    assert "/ui/login" in page.url  # logging out revoked the session
    context.close()


def test_flow_editor_shows_compile_errors_then_runs_with_a_live_log(
    new_page: OpenPage, workspaces: Workspaces
) -> None:
    page = new_page(workspaces["hub"])
    page.goto("/ui/flows/new")
    page.fill("#name", "hello")
    page.fill("#script", BROKEN_SCRIPT)
    page.click("#new-flow button[type=submit]")
    assert "line 2" in page.inner_text("#script-error")
    assert page.input_value("#script") == BROKEN_SCRIPT  # nothing typed is lost
    assert page.input_value("#name") == "hello"
    screenshot(page, "flow-new-error")
    page.fill("#script", LOGGING_SCRIPT)
    page.click("#new-flow button[type=submit]")
    page.wait_for_url("**/ui/flows/hello?saved=1")

    page.fill("#input_value", '{"who": ')
    page.click("#run button[type=submit]")
    assert "not valid JSON" in page.inner_text("#input_value-error")
    assert page.input_value("#input_value") == '{"who": '

    execution_id = run_flow(page, "hello", '{"who": "world"}')
    page.evaluate("window.loadedOnce = true")
    page.wait_for_selector("#log >> text=halfway")
    assert page.evaluate("window.loadedOnce") is True  # appended live, not by a reload
    assert page.inner_text("#ex-status") == "RUNNING"
    screenshot(page, "execution-running")
    wait_status(page, "ENDED_SUCCESS")
    page.wait_for_selector("#ex-outputs >> text=hello world")
    assert '"who": "world"' in page.inner_text("#ex-inputs")
    assert "this.log" in page.inner_text("#ex-script")
    screenshot(page, "execution")

    page.goto("/ui/flows?search=hel")
    assert page.locator("#flows a", has_text="hello").count() == 1
    screenshot(page, "flows")
    page.goto("/ui/flows/hello")
    assert page.locator(f"#recent a[href='/ui/executions/{execution_id}']").count() == 1
    screenshot(page, "flow")


def test_cancel_stops_a_running_execution(new_page: OpenPage, workspaces: Workspaces) -> None:
    page = new_page(workspaces["hub"])
    create_flow(page, "endless", ENDLESS_SCRIPT)
    run_flow(page, "endless")
    page.wait_for_selector("#log >> text=tick 2")
    with page.expect_navigation():  # the form posts and comes back to this page
        page.get_by_role("button", name="Cancel", exact=True).click()
    wait_status(page, "ENDED_CANCELLED")
    assert (
        page.get_by_role("button", name="Cancel", exact=True).count() == 0
    )  # an ended execution offers no Cancel

    page.goto("/ui/executions?status=ENDED_CANCELLED&flow=endless")
    rows = page.locator("#executions tbody tr")
    assert rows.count() == 1 and "ENDED_CANCELLED" in rows.inner_text()
    page.goto("/ui/executions")
    screenshot(page, "executions")


def test_link_made_through_both_forms_runs_a_remote_execution(
    new_page: OpenPage, workspaces: Workspaces
) -> None:
    hub_ws, edge_ws = workspaces["hub"], workspaces["edge"]
    hub, edge = new_page(hub_ws), new_page(edge_ws)

    # The hub controls and listens: its half needs only a name and a key pair.
    hub.goto("/ui/links/new")
    hub.fill("#name", "edge")
    hub.select_option("#role", "controlling")
    hub.fill("#remote_public_key", "not a key")
    hub.click("#generate-key")
    assert "not a PEM or OpenSSH public key" in hub.inner_text("#remote_public_key-error")
    assert hub.input_value("#name") == "edge"
    screenshot(hub, "link-form-error")
    hub.fill("#remote_public_key", "")
    hub.click("#generate-key")
    hub.wait_for_url("**/ui/links/edge?generated=1")
    hub_public = hub.input_value("#own-public-key")
    hub_sync_url = hub.inner_text("#this-sync-url")
    assert hub_public.startswith("-----BEGIN PUBLIC KEY-----")
    assert hub_sync_url == f"{hub_ws.url}/api/latest/sync_config/edge/sync"

    # The edge is controlled and dials out to the hub's sync URL.
    edge.goto("/ui/links/new")
    edge.fill("#name", "hub")
    edge.fill("#remote_url", hub_sync_url)
    edge.select_option("#role", "controlled")
    edge.fill("#remote_public_key", hub_public)
    edge.click("#generate-key")
    edge.wait_for_url("**/ui/links/hub?generated=1")
    edge_public = edge.input_value("#own-public-key")
    hub_fingerprint = hub.inner_text("#pairing small").strip("()")
    assert hub_fingerprint in edge.inner_text("#remote-fingerprints")

    hub.fill("#remote_public_key", edge_public)
    hub.click("#link-form button[value=save]")
    hub.wait_for_url("**/ui/links/edge?saved=1")
    hub.evaluate("window.tetherStayed = true")
    hub.wait_for_selector("#status >> text=connected", timeout=45_000)  # past a dialer backoff
    assert hub.evaluate("window.tetherStayed === true")  # the panel updated, the page stayed
    assert "edge" in hub.inner_text("#status")  # the other side's workspace name
    screenshot(hub, "link")
    hub.goto("/ui/links")
    hub.wait_for_selector("#links tr[data-link=edge] >> text=connected")
    screenshot(hub, "links")

    create_flow(hub, "greet", GREET_SCRIPT)
    create_flow(hub, "fan-out", PARENT_SCRIPT)
    parent_id = run_flow(hub, "fan-out")
    wait_status(hub, "ENDED_SUCCESS", timeout_ms=30_000)
    assert "hello hub" in hub.inner_text("#ex-outputs")
    child_row = hub.locator("#children li").first
    assert "remote" in child_row.inner_text() and "edge" in child_row.inner_text()
    remote_id = child_row.locator(".remote").inner_text()
    assert UUID.fullmatch(remote_id)
    screenshot(hub, "execution-with-remote-child")
    child_row.locator("a").first.click()
    hub.wait_for_url(re.compile(r".*/ui/executions/[0-9a-f-]{36}$"))
    child_id = hub.inner_text("#ex-id")
    assert child_id != parent_id and "sync config edge" in hub.inner_text("#ex-origin")

    # On the edge the same execution was received over the link, with the script it ran.
    edge.goto("/ui/executions?origin=received")
    edge.locator("#executions tbody tr a").first.click()
    edge.wait_for_url(f"**/ui/executions/{remote_id}")
    assert edge.inner_text("#ex-status") == "ENDED_SUCCESS"
    assert "greeting from the edge" in edge.inner_text("#log")
    assert "def handler" in edge.inner_text("#ex-script")
    # No flow of that name lives on the edge: the Flow fact points at the script, not a 404.
    assert edge.locator("#ex-flow a[href^='/ui/flows/']").count() == 0
    edge.click("#ex-flow a[href='#script']")
    assert edge.locator("#ex-script").is_visible()
    back = edge.locator("#ex-origin a.remote").get_attribute("href")
    assert back == f"{hub_ws.url}/ui/executions/{child_id}"  # the way back to the hub's record
    screenshot(edge, "execution-received")
    hub.goto(back)
    assert hub.inner_text("#ex-id") == child_id

    # Run in the linked workspace, picked from the links that can run there.
    hub.goto("/ui/flows/greet")
    options = hub.locator("#remote_workspace_name option")
    assert options.count() == 2 and "edge" in options.nth(1).inner_text()
    run_flow(hub, "greet", '{"who": "a form"}', remote="edge")
    assert "sync config edge" in hub.inner_text("#ex-origin")
    wait_status(hub, "ENDED_SUCCESS", timeout_ms=30_000)
    hub.wait_for_selector("#ex-outputs >> text=hello a form")


def test_users_page_adds_a_user_whose_role_hides_links(
    new_page: OpenPage, workspaces: Workspaces
) -> None:
    hub_ws = workspaces["hub"]
    admin = new_page(hub_ws)
    admin.goto("/ui/users")
    admin.fill("#name", "viewer")
    admin.fill("#password", "short")
    admin.click("#add-user button[type=submit]")
    assert "at least 8" in admin.inner_text("#password-error")
    assert admin.input_value("#name") == "viewer"
    admin.fill("#password", "viewer-password")
    admin.select_option("#role", "user")
    admin.click("#add-user button[type=submit]")
    admin.wait_for_selector("tr[data-user=viewer]")
    screenshot(admin, "users")

    viewer = new_page(hub_ws, "viewer", "viewer-password")
    assert viewer.locator("header nav a", has_text="Links").count() == 0
    assert status_of(viewer, "/ui/links") == 403
    assert "may not manage sync configs" in viewer.inner_text("main")
    screenshot(viewer, "forbidden")
    assert status_of(viewer, "/ui/users") == 403

    row = admin.locator("tr[data-user=viewer]")
    row.locator("select").select_option("workspace_admin")
    row.locator("text=Change role").click()
    admin.wait_for_selector("text=changed viewer")
    assert status_of(viewer, "/ui/users") == 200
    assert status_of(viewer, "/ui/links") == 403

    admin.locator("tr[data-user=viewer] >> text=Disable").click()
    admin.wait_for_selector("tr[data-user=viewer] >> text=disabled")
    viewer.goto("/ui/flows")
    assert "/ui/login" in viewer.url  # disabling revoked the session


def is_session_cookie(name: str) -> bool:
    return name.startswith("tether_session_") and not name.endswith("_login")


def test_one_browser_stays_logged_into_two_workspaces_on_one_host(
    browser: Browser, workspaces: Workspaces
) -> None:
    """Cookies ignore ports: with one cookie name, logging into one logged you out of the other.
    The pages also run under their Content-Security-Policy without a single violation."""
    context = browser.new_context()
    refused: list[str] = []
    page = context.new_page()
    page.on(
        "console",
        lambda message: refused.append(message.text) if "Refused" in message.text else None,
    )
    for name in ("hub", "edge"):
        page.goto(workspaces[name].url + "/ui/flows")
        page.fill("#user_name", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/flows")
    for name in ("hub", "edge", "hub"):
        page.goto(workspaces[name].url + "/ui/executions")
        assert page.url.endswith("/ui/executions"), name  # not sent to the login page
    assert len([c for c in context.cookies() if is_session_cookie(c["name"])]) == 2
    assert refused == []
    context.close()
