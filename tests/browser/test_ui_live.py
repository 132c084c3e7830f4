"""The pages a daily user watches, in a real browser: whose workspace it is, local times,
and lists and execution headers that follow executions without a reload.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import OpenPage, screenshot, wait_rendered_ended
from tests.support.workspace import ApiClient, ServedWorkspace
from tether.link import keys

if TYPE_CHECKING:
    from playwright.sync_api import Page

Workspaces = dict[str, ServedWorkspace]

pytestmark = pytest.mark.timeout(300)  # the first test may install Chromium from Debian

QUICK_SCRIPT = """def handler(system, this):
    this.log("done")
"""
HELD_SCRIPT = """def handler(system, this, inputs):
    this.log("held until setting", inputs["release"], "exists")
    while not system.setting(inputs["release"]).exists():
        this.sleep(0.1)
"""


@pytest.fixture
def api(workspaces: Workspaces) -> Iterator[ApiClient]:
    """The hub's API as its admin."""
    client = workspaces["hub"].client()
    yield client
    client.client.close()


def wait_text(page: Page, selector: str, text: str) -> None:
    """Wait until the element at ``selector`` reads ``text``."""
    page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return e && e.textContent.trim() === t; }",
        arg=[selector, text],
    )


def wait_ended(page: Page, status: str) -> None:
    """Wait until the execution page shows ``status`` and is rendered as ended."""
    wait_text(page, "#ex-status", status)
    wait_rendered_ended(page)


def stays(page: Page) -> None:
    """Mark the loaded document, so that ``has_stayed`` can tell a live update from a reload."""
    page.evaluate("window.tetherStayed = true")


def has_stayed(page: Page) -> bool:
    return page.evaluate("window.tetherStayed === true") is True


def test_every_page_names_its_workspace_and_shows_local_times_with_utc_on_hover(
    new_page: OpenPage, workspaces: Workspaces, api: ApiClient
) -> None:
    hub = workspaces["hub"]
    api.create_flow("quick", QUICK_SCRIPT)
    execution = api.run("quick")
    page = new_page(hub, timezone_id="Asia/Kolkata")  # UTC+05:30, no summer time
    for path in ("/ui/flows", "/ui/executions", f"/ui/executions/{execution['id']}"):
        page.goto(path)
        assert page.inner_text("#workspace-name") == "hub", path
        assert "hub" in page.title(), path
    started = page.locator("#ex-started time")
    utc = started.get_attribute("title")
    assert utc is not None and utc.endswith(" UTC")
    moment = datetime.datetime.strptime(utc, "%Y-%m-%d %H:%M:%S UTC")
    local = moment + datetime.timedelta(hours=5, minutes=30)
    assert started.inner_text() == local.strftime("%Y-%m-%d %H:%M:%S")
    log_time = page.locator("#log time").first
    assert ":" in log_time.inner_text() and (log_time.get_attribute("title") or "").endswith("UTC")


def test_the_executions_list_and_an_execution_header_follow_without_a_reload(
    new_page: OpenPage, workspaces: Workspaces, api: ApiClient
) -> None:
    hub = workspaces["hub"]
    api.create_flow("held", HELD_SCRIPT)
    page = new_page(hub)
    page.goto("/ui/executions?flow=held")
    stays(page)
    pending = api.start("held", name="held-live", run=False, input_value={"release": "go-1"})
    row = f"#executions tr[data-execution='{pending['id']}']"
    page.wait_for_selector(row)  # a new execution appears by itself
    wait_text(page, f"{row} .status", "PENDING")
    api.ok("POST", f"/execution/{pending['id']}/run")
    wait_text(page, f"{row} .status", "RUNNING")
    assert page.locator(f"{row} time").count() == 1  # started, not ended
    assert has_stayed(page)
    screenshot(page, "executions-live")

    # The header follows: status, started, and a duration that counts while it runs.
    other = api.start("held", name="held-header", run=False, input_value={"release": "go-2"})
    page.goto(f"/ui/executions/{other['id']}")
    stays(page)
    assert page.inner_text("#ex-started") == "—"
    api.ok("POST", f"/execution/{other['id']}/run")
    wait_text(page, "#ex-status", "RUNNING")
    page.wait_for_selector("#ex-started time")
    first = page.inner_text("#ex-duration")
    page.wait_for_function(
        "s => document.getElementById('ex-duration').textContent !== s", arg=first
    )
    assert has_stayed(page)

    api.set_setting("go-1", True)
    api.set_setting("go-2", True)
    wait_ended(page, "ENDED_SUCCESS")
    page.wait_for_selector("#ex-ended time")
    page.goto("/ui/executions?flow=held")
    assert page.locator("#executions .status", has_text="ENDED_SUCCESS").count() == 2


def test_settings_and_files_are_made_changed_and_deleted_from_their_pages(
    new_page: OpenPage, workspaces: Workspaces
) -> None:
    page = new_page(workspaces["hub"])
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmation before Delete
    page.click("header nav >> text=Settings")
    page.click("text=New setting")
    page.fill("#name", "greeting")
    page.fill("#value", '{"text": ')
    page.click("#setting-form button[value=save]")
    assert "not valid JSON" in page.inner_text("#value-error")
    assert page.input_value("#name") == "greeting"  # what was typed stays
    page.fill("#value", '{"text": "hello"}')
    page.click("#setting-form button[value=save]")
    page.wait_for_url("**/ui/settings/greeting?saved=1")
    screenshot(page, "setting")
    page.goto("/ui/settings")
    assert page.locator("#settings tr[data-setting=greeting]").count() == 1
    screenshot(page, "settings")
    page.goto("/ui/settings/greeting")
    page.click("#delete")
    page.wait_for_url("**/ui/settings")
    assert page.locator("#settings tr[data-setting=greeting]").count() == 0

    page.click("header nav >> text=Files")
    page.click("text=New file")
    page.fill("#name", "notes/today.txt")
    page.fill("#content", "first line\n")
    page.click("#file-form button[value=save]")
    page.wait_for_url("**/ui/files/notes/today.txt?saved=1")
    page.fill("#content", "first line\nsecond line\n")
    page.click("#file-form button[value=save]")
    page.wait_for_url("**/ui/files/notes/today.txt?saved=1")
    assert page.input_value("#content") == "first line\nsecond line\n"
    page.goto("/ui/files")
    assert "23 bytes" in page.inner_text("#files tr[data-file='notes/today.txt']")
    screenshot(page, "files")
    page.goto("/ui/files/notes/today.txt")
    page.click("#delete")
    page.wait_for_url("**/ui/files")
    assert page.locator("#files tr[data-file='notes/today.txt']").count() == 0


def test_rerun_starts_the_same_flow_with_the_same_inputs_and_names_the_original(
    new_page: OpenPage, workspaces: Workspaces, api: ApiClient
) -> None:
    api.create_flow(
        "echo", "def handler(system, this, inputs):\n    this.save(output_value=inputs)\n"
    )
    original = api.run("echo", name="echo once", input_value={"n": 41})
    page = new_page(workspaces["hub"])
    page.goto(f"/ui/executions/{original['id']}")
    page.click("#rerun button")
    page.wait_for_url(lambda url: original["id"] not in url)
    page.wait_for_selector("#ex-rerun-of")
    assert page.inner_text("#ex-rerun-of") == original["id"]
    wait_ended(page, "ENDED_SUCCESS")
    page.wait_for_selector("#ex-outputs >> text=41")
    assert page.inner_text("h1").endswith("echo once")


PARENT_OF_UNREACHABLE = """def handler(system, this):
    this.flow("far-leaf", remote_workspace_name="nowhere")
"""


def test_an_execution_waiting_on_a_link_that_is_down_says_so_and_cancels(
    new_page: OpenPage, workspaces: Workspaces, api: ApiClient
) -> None:
    ours, theirs = keys.generate_private_key(2048), keys.generate_private_key(2048)
    api.ok(
        "POST",
        "/sync_config",
        json={
            "name": "nowhere",
            "role": "controlling",
            "remote_url": "http://127.0.0.1:9/api/latest/sync_config/hub/sync",  # nobody listens
            "own_private_key": keys.private_pem(ours),
            "remote_public_key": keys.public_pem(theirs),
        },
    )
    api.create_flow("far-leaf", QUICK_SCRIPT)
    api.create_flow("reach-out", PARENT_OF_UNREACHABLE)
    parent = api.start("reach-out")
    page = new_page(workspaces["hub"])
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"/ui/executions/{parent['id']}")
    page.wait_for_selector("#waiting-on >> text=nowhere")  # appears live if not yet there
    page.wait_for_selector("#waiting-on .state")
    page.wait_for_selector("#children li >> text=remote")
    screenshot(page, "execution-waiting")
    with page.expect_navigation():  # the form posts and comes back to this page
        page.get_by_role("button", name="Cancel", exact=True).click()
    wait_ended(page, "ENDED_CANCELLED")
    assert page.locator("#waiting-on").count() == 0
