"""The HTML pages in-process: sessions, role rules, forms that keep what was typed, write-only keys."""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.waiting import wait_until
from tests.support.workspace import ADMIN_PASSWORD
from tether import config
from tether.web.app import create_app


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[TestClient]:
    """The app on SQLite (pages do not touch the store) driven like a browser, redirects not followed."""
    settings = config.Settings(
        data_dir=tmp_path / "data", name="test", admin_password=ADMIN_PASSWORD
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


FORM_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]*)"')


def form_token(client: TestClient, page: str = "/ui/flows") -> str:
    """The form token that ``page`` puts in its forms."""
    found = FORM_TOKEN.search(client.get(page).text)
    assert found, f"{page} has no form token"
    return found.group(1)


def post_form(client: TestClient, path: str, data: dict[str, Any], page: str = "/ui/flows") -> Any:
    """POST a form the way a browser does from ``page``: with the page's form token."""
    return client.post(path, data={**data, "csrf_token": form_token(client, page)})


def log_in(client: TestClient, name: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    answer = post_form(client, "/ui/login", {"user_name": name, "password": password}, "/ui/login")
    assert answer.status_code == 303, answer.text


def session_token(client: TestClient) -> str:
    """The session cookie's value, whatever the workspace named it."""
    return next(
        str(value)
        for name, value in client.cookies.items()
        if name.startswith("tether_session_") and not name.endswith("_login")
    )


def test_pages_send_a_visitor_without_session_to_the_login_page(browser: TestClient) -> None:
    answer = browser.get("/ui/executions?status=RUNNING")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fexecutions%3Fstatus%3DRUNNING"
    assert browser.get("/").headers["location"] == "/ui/flows"


def test_session_cookie_is_httponly_strict_and_logout_revokes_its_token(
    browser: TestClient,
) -> None:
    answer = post_form(
        browser,
        "/ui/login",
        {"user_name": "admin", "password": ADMIN_PASSWORD, "next": "//evil.example/"},
        "/ui/login",
    )
    assert answer.headers["location"] == "/ui/flows"  # no open redirect
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    token = session_token(browser)
    api = {"Authorization": f"Bearer {token}"}
    assert browser.get("/api/latest/auth/me", headers=api).status_code == 200
    post_form(browser, "/ui/logout", {})
    assert browser.get("/api/latest/auth/me", headers=api).status_code == 401


def test_wrong_password_keeps_the_user_name(browser: TestClient) -> None:
    answer = post_form(
        browser, "/ui/login", {"user_name": "admin", "password": "nope"}, "/ui/login"
    )
    assert answer.status_code == 401
    assert 'value="admin"' in answer.text and "wrong" in answer.text


def test_a_script_that_does_not_compile_comes_back_with_its_line_and_text(
    browser: TestClient,
) -> None:
    log_in(browser)
    script = "def handler(system, this):\n    x = (\n"
    answer = post_form(
        browser, "/ui/flows/new", {"name": "broken", "description": "d1", "script": script}
    )
    assert answer.status_code == 400
    assert "line 2" in answer.text
    assert "x = (" in answer.text and 'value="d1"' in answer.text
    assert browser.get("/ui/flows/broken").status_code == 404


def test_run_refuses_inputs_that_are_not_a_json_object(browser: TestClient) -> None:
    log_in(browser)
    post_form(
        browser,
        "/ui/flows/new",
        {"name": "f", "description": "", "script": "def handler(system, this):\n    pass\n"},
    )
    answer = post_form(browser, "/ui/flows/f/run", {"input_value": "[1, 2]"})
    assert answer.status_code == 400 and "must be a JSON object" in answer.text
    answer = post_form(browser, "/ui/flows/f/run", {"input_value": '{"a": 1}'})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/executions/")
    live = answer.headers["location"] + "/log.json"
    # end before the app stops
    wait_until(lambda: browser.get(live).json()["is_ended"], "the execution to end")


def test_generated_private_key_never_reaches_the_browser(browser: TestClient) -> None:
    log_in(browser)
    answer = post_form(
        browser, "/ui/links/new", {"name": "edge", "role": "controlling", "action": "generate_key"}
    )
    assert answer.headers["location"] == "/ui/links/edge?generated=1"
    page = browser.get("/ui/links/edge?generated=1").text
    assert "BEGIN PUBLIC KEY" in page and "SHA256:" in page
    assert "PRIVATE KEY-----\n" not in page  # only the empty field's placeholder names it
    assert "/api/latest/sync_config/edge/sync" in page  # the pairing text's Remote URL


def test_a_user_gets_403_pages_for_links_and_users(browser: TestClient) -> None:
    log_in(browser)
    answer = post_form(
        browser, "/ui/users", {"name": "viewer", "password": "viewer-password", "role": "user"}
    )
    assert answer.status_code == 303
    browser.cookies.clear()
    log_in(browser, "viewer", "viewer-password")
    assert ">Links<" not in browser.get("/ui/flows").text
    for path in ("/ui/links", "/ui/links/new", "/ui/users"):
        answer = browser.get(path)
        assert answer.status_code == 403, path
        assert "text/html" in answer.headers["content-type"]
    for path in ("/ui/links/edge/next_key", "/ui/links/edge/rotate_key"):
        assert post_form(browser, path, {}).status_code == 403, path  # admins only
    assert browser.get("/ui/settings").status_code == 200  # as the API: every role
    assert browser.get("/ui/files").status_code == 200


def test_executions_list_filters_and_pages_newest_first(browser: TestClient) -> None:
    log_in(browser)
    api = {"Authorization": f"Bearer {session_token(browser)}"}
    script = "def handler(system, this):\n    pass\n"
    browser.post("/api/latest/flow", json={"name": "f", "script": script}, headers=api)
    for number in range(51):
        body = {"flow_name": "f", "name": f"n{number:02d}", "run": False}
        assert browser.post("/api/latest/execution", json=body, headers=api).status_code == 201
    first = browser.get("/ui/executions?status=PENDING&flow=f").text
    names = re.findall(r">(n\d\d)</a>", first)
    assert len(names) == 50 and names[0] == "n50" and "n00" not in names
    assert "older →" in first
    second = browser.get("/ui/executions?status=PENDING&flow=f&origin=&page=2").text
    assert re.findall(r">(n\d\d)</a>", second) == ["n00"] and "older →" not in second
    table = browser.get("/ui/executions/table?status=PENDING&flow=f&page=2").text
    assert re.findall(r">(n\d\d)</a>", table) == ["n00"] and "<html" not in table
    assert "No execution matches" in browser.get("/ui/executions?origin=received").text


def test_the_link_page_saves_what_the_link_may_run(browser: TestClient) -> None:
    log_in(browser)
    post_form(browser, "/ui/links/new", {"name": "hub", "role": "controlled"})
    page = browser.get("/ui/links/hub").text
    assert 'id="link-policy"' in page and ">any</textarea>" in page
    digest = "ab" * 32
    form = {"role": "controlled", "accepted_scripts": f"{digest}\n", "run_as": "nobody"}
    answer = post_form(browser, "/ui/links/hub", form)
    assert answer.status_code == 400 and "no user &#39;nobody&#39;" in answer.text
    form |= {"run_as": "admin", "max_running": "3", "allow_onward_remote": "on"}
    assert post_form(browser, "/ui/links/hub", form).status_code == 303
    page = browser.get("/ui/links/hub").text
    assert f">{digest}</textarea>" in page and 'value="admin"' in page and 'value="3"' in page
    answer = post_form(browser, "/ui/links/hub", form | {"accepted_scripts": "abc"})
    assert answer.status_code == 400 and "not a SHA-256 digest" in answer.text


def test_the_execution_page_shows_the_owner_and_the_script_digest(browser: TestClient) -> None:
    log_in(browser)
    script = "def handler(system, this):\n    pass\n"
    post_form(browser, "/ui/flows/new", {"name": "f", "description": "", "script": script})
    location = post_form(browser, "/ui/flows/f/run", {"input_value": "{}"}).headers["location"]
    page = browser.get(location).text
    assert 'id="ex-owner">admin<' in page
    assert hashlib.sha256(script.encode()).hexdigest() in page
    wait_until(
        lambda: browser.get(location + "/log.json").json()["is_ended"], "the execution to end"
    )


@pytest.mark.parametrize("sandbox", ["on", "off"])
def test_every_page_warns_while_the_sandbox_is_off(tmp_path: Path, sandbox: str) -> None:
    settings = config.Settings(
        data_dir=tmp_path / "data", name="test", admin_password=ADMIN_PASSWORD, sandbox=sandbox
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        pages = [client.get("/ui/login")]
        log_in(client)
        pages += [client.get(path) for path in ("/ui/flows", "/ui/executions", "/ui/users")]
    for page in pages:
        assert page.status_code == 200, page.text
        assert ("The sandbox is off" in page.text) == (sandbox == "off")


def test_every_page_names_its_workspace_in_the_header_and_the_title(tmp_path: Path) -> None:
    """Two workspaces' tabs must not look alike: each page says whose it is."""
    settings = config.Settings(
        data_dir=tmp_path / "data", name="north-lab", admin_password=ADMIN_PASSWORD
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        pages = [client.get("/ui/login")]
        log_in(client)
        paths = ("/ui/flows", "/ui/executions", "/ui/links", "/ui/users", "/ui/flows/missing")
        pages += [client.get(path) for path in paths]
    for page in pages:
        title = re.search(r"<title>(.*?)</title>", page.text, re.S)
        assert title and "north-lab" in title.group(1), page.url
        assert 'id="workspace-name"' in page.text and ">north-lab</span>" in page.text, page.url


def wait_ended(client: TestClient, execution_page: str) -> None:
    """Wait until the execution of ``execution_page`` has ended (before the app stops)."""
    wait_until(
        lambda: client.get(execution_page + "/log.json").json()["is_ended"],
        "the execution to end",
    )


TIME_ELEMENT = re.compile(
    r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">'
)


def test_lists_and_execution_pages_show_started_ended_and_duration_in_one_format(
    browser: TestClient,
) -> None:
    log_in(browser)
    script = "def handler(system, this):\n    this.log('one line')\n"
    post_form(browser, "/ui/flows/new", {"name": "f", "description": "", "script": script})
    location = post_form(browser, "/ui/flows/f/run", {"input_value": "{}"}).headers["location"]
    wait_ended(browser, location)
    page = browser.get(location).text
    for fact in ("ex-started", "ex-ended"):
        assert re.search(f'id="{fact}">' + TIME_ELEMENT.pattern, page), fact
    assert re.search(r'id="ex-duration"><span class="duration">\d+\.\d s</span>', page)
    assert len(TIME_ELEMENT.findall(page)) == 4  # created, started, ended, the log line
    listing = browser.get("/ui/executions").text
    assert len(TIME_ELEMENT.findall(listing)) == 2  # started and ended
    assert re.search(r'<span class="duration">\d+\.\d s</span>', listing)
    recent = browser.get("/ui/flows/f").text
    assert re.search(r'<span class="duration">\d+\.\d s</span>', recent)
    for text in (page, listing, recent):
        assert not re.search(r"\d\d:\d\d:\d\d\.\d", text)  # never fractions of a second
        assert "(UTC)" not in text  # the browser shows local times; UTC is on hover


def test_the_flow_form_refuses_a_handler_the_engine_cannot_call_and_says_what_to_write(
    browser: TestClient,
) -> None:
    log_in(browser)
    script = "import json\n\n\ndef handler(system):\n    pass\n"
    form = {"name": "lonely", "description": "", "script": script}
    answer = post_form(browser, "/ui/flows/new", form)
    assert answer.status_code == 400
    assert "takes (system)" in answer.text and "def handler(system, this):" in answer.text
    assert 'data-error-line="4"' in answer.text  # the editor selects the def
    assert browser.get("/ui/flows/lonely").status_code == 404
    quick = "def handler(system, this):\n    pass\n"
    post_form(browser, "/ui/flows/new", form | {"script": quick})
    answer = post_form(browser, "/ui/flows/lonely", {"script": "x = 1\n", "description": ""})
    assert answer.status_code == 400 and "defines no handler" in answer.text
    assert "x = 1" in answer.text  # what was typed stays


PARENT_OF_REMOTE = """def handler(system, this):
    this.flow("leaf", remote_workspace_name="nowhere")
"""


def test_an_execution_page_says_why_it_waits_and_shows_its_children_as_a_tree(
    browser: TestClient,
) -> None:
    log_in(browser)
    link = {
        "name": "nowhere",
        "enabled": "on",
        "role": "controlling",
        "remote_url": "http://127.0.0.1:9/api/latest/sync_config/hub/sync",  # nobody listens
        "action": "generate_key",
    }
    assert post_form(browser, "/ui/links/new", link).status_code == 303
    post_form(
        browser,
        "/ui/flows/new",
        {"name": "leaf", "script": "def handler(system, this):\n    pass\n"},
    )
    post_form(browser, "/ui/flows/new", {"name": "parent", "script": PARENT_OF_REMOTE})
    location = post_form(browser, "/ui/flows/parent/run", {"input_value": "{}"}).headers["location"]
    page = wait_until(
        lambda: (text := browser.get(location + "/summary").text) * ('id="waiting-on"' in text),
        "the parent to wait on its remote child",
    )
    assert "<html" not in page  # the live part alone
    assert "sync config <b>nowhere</b>" in page and 'class="state st-' in page
    tree = page[page.index('id="children"') :]
    assert tree.count("<li data-execution=") == 1 and ">remote</span>" in tree
    child_id = re.search(r'<li data-execution="([0-9a-f-]{36})"', tree)
    assert child_id
    child = browser.get(f"/ui/executions/{child_id.group(1)}").text
    assert 'id="waiting-on"' in child and "this execution" in child
    post_form(browser, location + "/cancel", {})
    wait_ended(browser, location)
    assert 'id="waiting-on"' not in browser.get(location).text


def test_run_offers_only_the_links_that_can_run_and_a_rerun_repeats_the_inputs(
    browser: TestClient,
) -> None:
    log_in(browser)
    for name, role, enabled in (
        ("edge", "controlling", "on"),
        ("off", "controlling", ""),
        ("boss", "controlled", "on"),
    ):
        link = {"name": name, "role": role, "enabled": enabled}
        assert post_form(browser, "/ui/links/new", link).status_code == 303
    script = "def handler(system, this, inputs):\n    this.save(output_value=inputs)\n"
    post_form(browser, "/ui/flows/new", {"name": "echo", "script": script})
    page = browser.get("/ui/flows/echo").text
    offered = re.findall(
        r'<option value="([^"]*)"', page[page.index('id="remote_workspace_name"') :]
    )
    assert offered == ["", "edge"]  # here, or the one enabled controlling link
    run = {"input_value": '{"n": 7}', "name": "first"}
    location = post_form(browser, "/ui/flows/echo/run", run).headers["location"]
    wait_ended(browser, location)
    original = location.rsplit("/", 1)[1]
    answer = post_form(browser, location + "/rerun", {})
    assert answer.status_code == 303 and answer.headers["location"] != location
    again = answer.headers["location"]
    wait_ended(browser, again)
    page = browser.get(again).text
    assert f'id="ex-rerun-of"><a href="/ui/executions/{original}">' in page
    assert "&#34;n&#34;: 7" in page and "first" in page  # same inputs, same name
    api = {"Authorization": f"Bearer {session_token(browser)}"}
    record = browser.get(f"/api/latest/execution/{again.rsplit('/', 1)[1]}", headers=api).json()
    assert record["rerun_of"] == original and record["output_value"] == {"n": 7}


def log_in_as_user(client: TestClient) -> None:
    """Log in as a new user of role 'user' (settings and files are for every role, as in the API)."""
    log_in(client)
    user = {"name": "viewer", "password": "viewer-password", "role": "user"}
    assert post_form(client, "/ui/users", user).status_code == 303
    client.cookies.clear()
    log_in(client, "viewer", "viewer-password")


def test_settings_pages_list_create_edit_and_delete_with_the_api_rules(
    browser: TestClient,
) -> None:
    log_in_as_user(browser)
    assert ">Settings<" in browser.get("/ui/flows").text
    bad = post_form(browser, "/ui/settings/new", {"name": "limits", "value": '{"max": '})
    assert bad.status_code == 400 and "not valid JSON: line 1" in bad.text
    assert 'value="limits"' in bad.text and "{&#34;max&#34;: </textarea>" in bad.text
    answer = post_form(browser, "/ui/settings/new", {"name": "limits", "value": '{"max": 3}'})
    assert answer.headers["location"] == "/ui/settings/limits?saved=1"
    again = post_form(browser, "/ui/settings/new", {"name": "limits", "value": "1"})
    assert again.status_code == 400 and "exists" in again.text
    assert "limits" in browser.get("/ui/settings").text
    assert "&#34;max&#34;: 3" in browser.get("/ui/settings/limits").text
    post_form(browser, "/ui/settings/limits", {"value": "[1, 2]"})
    api = {"Authorization": f"Bearer {session_token(browser)}"}
    assert browser.get("/api/latest/setting/limits", headers=api).json()["value"] == [1, 2]
    unsigned = browser.post("/ui/settings/limits", data={"action": "delete"})
    assert unsigned.status_code == 403  # no form token: refused
    assert post_form(browser, "/ui/settings/limits", {"action": "delete"}).status_code == 303
    assert browser.get("/ui/settings/limits").status_code == 404
    assert "No settings yet" in browser.get("/ui/settings").text


def test_files_pages_list_create_edit_and_delete_and_show_binary_files_as_base64(
    browser: TestClient,
) -> None:
    log_in_as_user(browser)
    answer = post_form(browser, "/ui/files/new", {"name": "conf/app.ini", "content": "a = 1\n"})
    assert answer.headers["location"] == "/ui/files/conf/app.ini?saved=1"
    bad = post_form(browser, "/ui/files/new", {"name": "no\\good", "content": "kept"})
    assert bad.status_code == 400 and ">kept</textarea>" in bad.text
    listing = browser.get("/ui/files").text
    assert "conf/app.ini" in listing and "6 bytes" in listing
    assert ">a = 1\n</textarea>" in browser.get("/ui/files/conf/app.ini").text
    post_form(browser, "/ui/files/conf/app.ini", {"content": "a = 2\n"})
    assert ">a = 2\n</textarea>" in browser.get("/ui/files/conf/app.ini").text
    api = {"Authorization": f"Bearer {session_token(browser)}"}
    raw = {"name": "blob", "content_base64": "/wD+"}  # bytes ff 00 fe: not UTF-8
    assert browser.post("/api/latest/file", json=raw, headers=api).status_code == 201
    page = browser.get("/ui/files/blob").text
    assert "binary file of 3 bytes" in page and "/wD+" in page and "<textarea" not in page
    assert post_form(browser, "/ui/files/conf/app.ini", {"action": "delete"}).status_code == 303
    assert browser.get("/ui/files/conf/app.ini").status_code == 404


def test_a_link_page_rotates_this_sides_key_in_the_steps_the_guide_gives(
    browser: TestClient,
) -> None:
    log_in(browser)
    made = {"name": "edge", "role": "controlling", "action": "generate_key"}
    assert post_form(browser, "/ui/links/new", made).status_code == 303
    api = {"Authorization": f"Bearer {session_token(browser)}"}
    before = browser.get("/api/latest/sync_config/edge", headers=api).json()
    assert 'id="prepare-next-key"' in browser.get("/ui/links/edge").text
    answer = post_form(browser, "/ui/links/edge/next_key", {})
    assert answer.headers["location"] == "/ui/links/edge?next=1#rotation"
    prepared = browser.get("/api/latest/sync_config/edge", headers=api).json()
    upcoming = prepared["next_own_key_fingerprint"]
    assert upcoming and upcoming != before["own_key_fingerprint"]
    page = browser.get("/ui/links/edge?next=1").text
    assert 'id="next-public-key"' in page and upcoming in page
    assert "PRIVATE KEY-----\n" not in page  # the next private key stays in the workspace

    # The other side trusts both keys at once: both pasted into the one field.
    both = before["own_public_key"] + "\n" + prepared["next_own_public_key"]
    peer = {"name": "peer", "role": "controlled", "remote_public_key": both}
    assert post_form(browser, "/ui/links/new", peer).status_code == 303
    trusted = browser.get("/api/latest/sync_config/peer", headers=api).json()
    assert trusted["remote_key_fingerprints"] == [before["own_key_fingerprint"], upcoming]

    answer = post_form(browser, "/ui/links/edge/rotate_key", {})
    assert answer.headers["location"] == "/ui/links/edge?rotated=1#rotation"
    after = browser.get("/api/latest/sync_config/edge", headers=api).json()
    assert after["own_key_fingerprint"] == upcoming and after["next_own_key_fingerprint"] is None

    post_form(browser, "/ui/links/edge/next_key", {})
    post_form(browser, "/ui/links/edge/next_key", {"action": "discard"})
    discarded = browser.get("/api/latest/sync_config/edge", headers=api).json()
    assert discarded["next_own_key_fingerprint"] is None
    assert discarded["own_key_fingerprint"] == upcoming


def listed_names(page: str) -> list[str]:
    """The execution names of an executions table, top to bottom."""
    return re.findall(r'<td class="name"><a href="/ui/executions/[0-9a-f-]+">([^<]*)</a>', page)


def test_executions_are_found_by_name_message_or_log_text_and_by_a_local_time_range(
    browser: TestClient,
) -> None:
    log_in(browser)
    api = {"Authorization": f"Bearer {session_token(browser)}"}
    scripts = {
        "logs": "def handler(system, this):\n    this.log('a Needle in the log')\n",
        "fails": "def handler(system, this):\n    this.error('it went KAPUTT')\n",
        "idle": "def handler(system, this):\n    pass\n",
    }
    for name, script in scripts.items():
        post_form(browser, "/ui/flows/new", {"name": name, "script": script})
    for flow in ("logs", "fails"):
        location = post_form(browser, f"/ui/flows/{flow}/run", {"name": f"run {flow}"})
        wait_ended(browser, location.headers["location"])
    body = {"flow_name": "idle", "name": "alpha 100%", "run": False}
    created = browser.post("/api/latest/execution", json=body, headers=api).json()["created_at"]

    def found(**query: str) -> list[str]:
        return listed_names(browser.get("/ui/executions", params=query).text)

    assert found(text="needle") == ["run logs"]  # a log entry, in any case
    assert found(text="kaputt") == ["run fails"]  # the message
    assert found(text="100%") == ["alpha 100%"] and found(text="0%") == ["alpha 100%"]
    assert found(text="%") == ["alpha 100%"]  # % is a character, not a wildcard
    table = browser.get("/ui/executions/table", params={"text": "needle"}).text
    assert listed_names(table) == ["run logs"]  # the live table keeps the search

    # A browser at UTC+01:00 (offset -60) types its local time; the page reads it as such.
    moment = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    local = (moment + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert "alpha 100%" in found(**{"from": local, "tz": "-60"})
    assert "alpha 100%" in found(**{"to": local, "tz": "-60"})  # to the end of that minute
    earlier = (moment + datetime.timedelta(minutes=59)).strftime("%Y-%m-%dT%H:%M")
    assert "alpha 100%" not in found(**{"to": earlier, "tz": "-60"})
    later = (moment + datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    assert found(**{"from": later, "tz": "0"}) == []
    answer = browser.get("/ui/executions", params={"from": "yesterday"})
    assert answer.status_code == 200 and "not a date and time" in answer.text


def test_a_flow_page_counts_its_outcomes_and_charts_their_durations(
    browser: TestClient,
) -> None:
    log_in(browser)
    script = (
        "def handler(system, this, inputs):\n    if inputs['fail']:\n        this.error('no')\n"
    )
    post_form(browser, "/ui/flows/new", {"name": "coin", "script": script})
    assert "0 succeeded" in browser.get("/ui/flows/coin").text
    for fail in ("false", "true", "false"):
        location = post_form(browser, "/ui/flows/coin/run", {"input_value": f'{{"fail": {fail}}}'})
        wait_ended(browser, location.headers["location"])
    page = browser.get("/ui/flows/coin").text
    assert '<b class="count-ok">2 succeeded</b>' in page
    assert '<b class="count-bad">1 failed</b>' in page and "0 not ended" in page
    chart = page[page.index('<svg class="chart"') : page.index("</svg>")]
    assert chart.count("<rect ") == 3 and "<script" not in chart
    statuses = re.findall(r'class="bar s-(\w+)"', chart)
    assert statuses == ["ended_success", "ended_error", "ended_success"]  # oldest first


def test_children_show_as_a_tree_of_every_level_with_status_and_duration(
    browser: TestClient,
) -> None:
    log_in(browser)
    scripts = {
        "leaf": "def handler(system, this):\n    pass\n",
        "mid": "def handler(system, this):\n    this.flow('leaf', name='leaf 1')\n",
        "top": "def handler(system, this):\n    this.flow('mid', name='mid a')\n"
        "    this.flow('mid', name='mid b')\n",
    }
    for name, script in scripts.items():
        post_form(browser, "/ui/flows/new", {"name": name, "script": script})
    location = post_form(browser, "/ui/flows/top/run", {}).headers["location"]
    wait_ended(browser, location)
    page = browser.get(location).text
    tree = page[page.index('id="children"') :]
    names = re.findall(r'<a href="/ui/executions/[0-9a-f-]{36}">([^<]+)</a>', tree)
    assert names[:4] == ["mid a", "leaf 1", "mid b", "leaf 1"]  # each leaf under its parent
    assert tree.count('<ul class="tree">') == 3  # the top level and one under each mid
    assert tree.count("ENDED_SUCCESS") == 4
    assert len(re.findall(r'<span class="duration">\d+\.\d s</span>', tree)) == 4


def test_a_link_page_says_a_sync_interval_does_nothing_on_the_side_that_listens(
    browser: TestClient,
) -> None:
    log_in(browser)
    listening = {"name": "hub", "role": "controlled", "sync_interval": "30"}
    assert post_form(browser, "/ui/links/new", listening).status_code == 303
    assert 'id="sync-interval-unused"' in browser.get("/ui/links/hub").text
    dialing = {
        "name": "edge",
        "role": "controlling",
        "remote_url": "http://127.0.0.1:9/api/latest/sync_config/hub/sync",
        "sync_interval": "30",
    }
    assert post_form(browser, "/ui/links/new", dialing).status_code == 303
    assert 'id="sync-interval-unused"' not in browser.get("/ui/links/edge").text
