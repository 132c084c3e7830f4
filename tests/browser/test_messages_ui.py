"""The messages page in real Chromium against a real `tether serve`: a flow's form is
rendered, a bad answer is refused in the page and a good one resumes the flow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import OpenPage, _stop, screenshot
from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient, ServedWorkspace

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.timeout(300)

ASKING = """
def handler(system, this):
    message = system.message(
        subject='Restart the web servers?',
        message_type='WARN',
        body={
            'type': 'object',
            'properties': {
                'intro': {'element': 'markdown', 'order': 1,
                          'description': 'Three servers answer slowly since 09:00.'},
                'reason': {'label': 'Reason', 'element': 'string', 'order': 2},
                'servers': {'label': 'How many', 'element': 'number', 'order': 3, 'default': 3},
                'drain': {'label': 'Drain first', 'element': 'boolean', 'order': 4, 'default': True},
                'at': {'label': 'When', 'element': 'time', 'order': 5},
                'restart': {'label': 'Restart', 'element': 'submit', 'order': 6},
                'skip': {'label': 'Not now', 'element': 'submit', 'order': 7},
            },
            'required': ['reason'],
        },
    )
    this.save(output_value={'response': message.wait().get('response')})
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWorkspace]:
    served = ServedWorkspace("ops", tmp_path_factory.mktemp("messages") / "ops")
    try:
        yield served.start()
    finally:
        _stop(served)


@pytest.fixture
def api(workspace: ServedWorkspace) -> Iterator[ApiClient]:
    client = workspace.client()
    yield client
    client.client.close()


def card(page: Page, message_id: str) -> str:
    return f"form[data-message='{message_id}']"


def test_the_form_is_rendered_and_answered_in_the_page(
    new_page: OpenPage, workspace: ServedWorkspace, api: ApiClient
) -> None:
    api.create_flow("restart", ASKING)
    ex = api.start("restart")
    message = wait_until(
        lambda: next(iter(api.ok("GET", "/message", params={"execution_id": ex["id"]})), None),
        "the flow's message",
    )
    page = new_page(workspace)

    page.goto(f"/ui/executions/{ex['id']}")
    waiting = page.locator(f"#waiting-on li[data-message='{message['id']}']")
    assert "Restart the web servers?" in waiting.inner_text()

    page.click("nav a[href='/ui/messages']")
    form = card(page, message["id"])
    page.wait_for_selector(form)
    assert page.locator(f"{form} h2").inner_text().startswith("Restart the web servers?")
    assert "Three servers answer slowly" in page.locator(f"{form} .markdown").inner_text()
    types = page.eval_on_selector_all(
        f"{form} input[data-key]",
        "els => els.map(e => [e.dataset.key, e.type, e.value, e.checked])",
    )
    assert types == [
        ["reason", "text", "", False],
        ["servers", "number", "3", False],
        ["drain", "checkbox", "on", True],
        ["at", "time", "", False],
    ]
    assert page.locator(f"{form} button").all_inner_texts() == ["Restart", "Not now"]
    screenshot(page, "messages")

    page.click(f"{form} button[value=restart]")  # no reason given: refused, still open
    alert = page.locator(f"{form} .error")
    assert "'Reason' (reason) is required" in alert.inner_text()
    assert "stays open" in alert.inner_text()
    assert api.ok("GET", f"/message/{message['id']}")["status"] == "open"

    page.fill(f"{form} input[data-key=reason]", "slow answers")
    page.fill(f"{form} input[data-key=servers]", "2")
    page.uncheck(f"{form} input[data-key=drain]")
    page.fill(f"{form} input[data-key=at]", "21:30")
    page.click(f"{form} button[value=restart]")
    page.wait_for_url("**/ui/messages?answered=*")
    assert page.locator(".notice").is_visible()
    assert page.locator("#no-messages").is_visible()
    assert page.locator(f"#answered tr[data-message='{message['id']}']").is_visible()

    ended = api.wait_ended(ex["id"])
    assert ended["status"] == "ENDED_SUCCESS", ended
    assert ended["output_value"]["response"] == {
        "reason": "slow answers",
        "servers": 2,
        "drain": False,
        "at": "21:30",
        "restart": True,
        "skip": False,
    }


def test_a_form_is_answered_on_its_executions_page(
    new_page: OpenPage, workspace: ServedWorkspace, api: ApiClient
) -> None:
    api.create_flow(
        "asks-host",
        "def handler(system, this):\n"
        "    this.set_output('host', this.message('Host?', request='Which host?')['string'])\n",
    )
    ex = api.start("asks-host")
    wait_until(lambda: api.ok("GET", "/message", params={"execution_id": ex["id"]}), "the message")
    page = new_page(workspace)
    page.goto(f"/ui/executions/{ex['id']}")
    form = "#ex-messages form.message"
    assert page.locator(f"{form} label").inner_text().startswith("Which host?")
    page.fill(f"{form} input[data-key=string]", "db-3")
    page.click(f"{form} button")
    page.wait_for_url(f"**/ui/executions/{ex['id']}?answered=*")
    assert page.locator("#answered-notice").is_visible()
    page.wait_for_function(
        "() => document.getElementById('ex-status').textContent === 'ENDED_SUCCESS'"
    )
    assert api.wait_ended(ex["id"])["output_value"] == {"host": "db-3"}
