"""The messages page and the forms embedded in an execution's page, driven in-process like a
browser: typing of posted fields, where an answer leads back to, and refusals in the page."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.integration.test_ui_pages import browser, log_in, post_form  # noqa: F401 (fixture)
from tests.support.waiting import wait_until
from tests.support.workspace import ADMIN_PASSWORD

TWO_QUESTIONS = """
def handler(system, this):
    first = system.message('first', body={'properties': {
        'count': {'element': 'number', 'label': 'Count'},
        'note': {'element': 'string'},
    }})
    second = system.message('second', message='read me')
    this.set_output('first', first.wait().get('response'))
    this.set_output('second', second.wait().get('response'))
"""


def api(client: TestClient, method: str, path: str, token: str, **kwargs: Any) -> Any:
    answer = client.request(
        method, "/api/latest" + path, headers={"Authorization": f"Bearer {token}"}, **kwargs
    )
    assert answer.is_success, answer.text
    return answer.json()


def test_answers_are_typed_checked_and_lead_back_only_to_this_site(
    browser: TestClient,  # noqa: F811
) -> None:
    log_in(browser)
    token = browser.post(
        "/api/latest/auth/login", json={"user_name": "admin", "password": ADMIN_PASSWORD}
    ).json()["token"]
    api(browser, "POST", "/flow", token, json={"name": "two", "script": TWO_QUESTIONS})
    ex = api(browser, "POST", "/execution", token, json={"flow_name": "two"})
    found = wait_until(
        lambda: (
            len(api(browser, "GET", "/message", token)) == 2
            and {m["subject"]: m["id"] for m in api(browser, "GET", "/message", token)}
        ),
        "both messages",
    )
    page = browser.get(f"/ui/executions/{ex['id']}").text
    assert (
        f'data-message="{found["first"]}"' in page and f'data-message="{found["second"]}"' in page
    )
    assert f'name="next" value="/ui/executions/{ex["id"]}"' in page

    first = f"/ui/messages/{found['first']}"
    refused = post_form(
        browser, first, {"field:count": "abc", "field:note": "kept"}, "/ui/messages"
    )
    assert refused.status_code == 400
    assert "&#39;count&#39; must be a number, not &#39;abc&#39;" in refused.text
    assert 'value="kept"' in refused.text

    elsewhere = {"field:count": "2.5", "next": "https://evil.example/ui/executions/x"}
    answer = post_form(browser, first, elsewhere, "/ui/messages")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/messages?answered={found['first']}"

    back = post_form(
        browser, f"/ui/messages/{found['second']}", {"next": f"/ui/executions/{ex['id']}"}
    )
    assert back.status_code == 303
    assert back.headers["location"] == f"/ui/executions/{ex['id']}?answered={found['second']}"

    def ended() -> dict[str, Any]:
        record: dict[str, Any] = api(browser, "GET", f"/execution/{ex['id']}", token)
        assert record["status"] == "ENDED_SUCCESS", record
        return record

    assert wait_until(ended, "the flow to end")["output_value"] == {
        "first": {"count": 2.5, "note": None},
        "second": {"ok": True},
    }
