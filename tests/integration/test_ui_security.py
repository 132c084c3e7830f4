"""The UI refuses cross-site requests, sends its security headers, and keeps one session cookie
per workspace (issue 15)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.workspace import ADMIN_PASSWORD
from tether import config
from tether.web.app import create_app

FORM_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]*)"')
FLOW = {"name": "f", "description": "", "script": "def handler(system, this):\n    pass\n"}


def open_ui(data_dir: Path) -> TestClient:
    settings = config.Settings(data_dir=data_dir, name="test", admin_password=ADMIN_PASSWORD)
    return TestClient(create_app(settings), follow_redirects=False)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[TestClient]:
    with open_ui(tmp_path / "data") as client:
        yield client


def form_token(client: TestClient, page: str) -> str:
    found = FORM_TOKEN.search(client.get(page).text)
    assert found, page
    return found.group(1)


def log_in(client: TestClient) -> Any:
    token = form_token(client, "/ui/login")
    data = {"user_name": "admin", "password": ADMIN_PASSWORD, "csrf_token": token}
    answer = client.post("/ui/login", data=data)
    assert answer.status_code == 303, answer.text
    return answer


def session_cookies(client: TestClient) -> dict[str, str]:
    return {
        name: value
        for name, value in client.cookies.items()
        if name.startswith("tether_session_") and not name.endswith("_login")
    }


def test_a_form_without_its_session_token_is_refused_with_403(browser: TestClient) -> None:
    log_in(browser)
    for sent in ({}, {"csrf_token": "0" * 64}):
        answer = browser.post("/ui/flows/new", data={**FLOW, **sent})
        assert answer.status_code == 403 and "another site" in answer.text
    assert browser.get("/ui/flows/f").status_code == 404  # nothing was created
    answer = browser.post("/ui/logout", data={})
    assert answer.status_code == 403 and browser.get("/ui/flows").status_code == 200
    token = form_token(browser, "/ui/flows")
    assert browser.post("/ui/flows/new", data={**FLOW, "csrf_token": token}).status_code == 303


def test_the_login_form_needs_its_token_too(browser: TestClient) -> None:
    """A forged login (logging the victim into the attacker's account) is refused."""
    data = {"user_name": "admin", "password": ADMIN_PASSWORD}
    assert browser.post("/ui/login", data=data).status_code == 403
    assert not session_cookies(browser)
    browser.cookies.clear()
    token = form_token(browser, "/ui/login")
    browser.cookies.clear()  # the token without the login cookie it belongs to
    assert browser.post("/ui/login", data={**data, "csrf_token": token}).status_code == 403
    log_in(browser)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
    ],
    ids=["foreign-origin", "null-origin", "cross-site", "same-site", "cross-site-own-origin"],
)
def test_a_cross_site_post_is_refused_even_with_a_good_token(
    browser: TestClient, headers: dict[str, str]
) -> None:
    log_in(browser)
    token = form_token(browser, "/ui/flows")
    answer = browser.post("/ui/flows/new", data={**FLOW, "csrf_token": token}, headers=headers)
    assert answer.status_code == 403
    assert browser.get("/ui/flows/f").status_code == 404
    same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    answer = browser.post("/ui/flows/new", data={**FLOW, "csrf_token": token}, headers=same)
    assert answer.status_code == 303


def test_a_same_origin_form_passes_behind_a_proxy_that_rewrites_host(browser: TestClient) -> None:
    """Sec-Fetch-Site decides when the browser sends it; Origin then need not match Host."""
    log_in(browser)
    token = form_token(browser, "/ui/flows")
    proxied = {"Origin": "https://tether.example.com", "Sec-Fetch-Site": "same-origin"}
    answer = browser.post("/ui/flows/new", data={**FLOW, "csrf_token": token}, headers=proxied)
    assert answer.status_code == 303


def test_every_page_sends_the_security_headers(browser: TestClient) -> None:
    answer = browser.get("/ui/login")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    log_in(browser)
    for path in ("/ui/flows", "/ui/executions", "/ui/users", "/ui/links", "/ui/nowhere"):
        answer = browser.get(path)
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["cache-control"] == "no-store", path
    assert browser.get("/api/latest/health").headers["cache-control"] == "no-store"
    static = browser.get("/ui/static/tether.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")
    assert static.headers["x-content-type-options"] == "nosniff"


def test_two_workspaces_on_one_host_keep_their_own_session_cookies(tmp_path: Path) -> None:
    """Cookies ignore ports: with one cookie name, logging into one logged you out of the other."""
    with open_ui(tmp_path / "one") as one, open_ui(tmp_path / "two") as two:
        log_in(one)
        two.cookies.update(one.cookies)  # one browser, two workspaces on one host
        log_in(two)
        cookies = session_cookies(two)
        assert len(cookies) == 2, cookies
        one.cookies.update(two.cookies)
        assert one.get("/ui/flows").status_code == 200
        assert two.get("/ui/flows").status_code == 200


def test_every_post_form_of_every_template_carries_the_form_token() -> None:
    """A form without the token would be refused (403) for every user: none may lack it."""
    templates = Path(__file__).resolve().parents[2] / "src" / "tether" / "web" / "templates"
    forms = 0
    for path in templates.rglob("*.html"):
        for form in re.findall(r'<form[^>]*method="post".*?</form>', path.read_text(), re.S):
            forms += 1
            assert '<input type="hidden" name="csrf_token" value="{{ csrf_token }}">' in form, (
                f"{path.name}: {form[:120]}"
            )
    assert forms >= 15  # the pattern still finds the forms
