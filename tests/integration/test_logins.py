"""Logins cannot stall the store, failures are throttled, and sessions end (issue 15)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.support.waiting import wait_until
from tests.support.workspace import ADMIN_PASSWORD, ApiClient
from tether import config
from tether.actions import passwords, throttle
from tether.store import schema
from tether.store import users as user_rows
from tether.web.app import create_app

# What a check costs the server is what these tests are about.
pytestmark = pytest.mark.real_password_cost

PASSWORD = "a-long-enough-password"
API_URL = "http://testserver/api/latest"


class FakeClock:
    """The workspace's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(app_client: TestClient) -> FakeClock:
    fake = FakeClock()
    app_client.app.state.ctx.clock = fake  # type: ignore[attr-defined]
    return fake


def login(client: TestClient, name: str, password: str) -> Any:
    return client.post("/auth/login", json={"user_name": name, "password": password})


def make_user(api: ApiClient, name: str) -> None:
    api.ok("POST", "/user", json={"name": name, "password": PASSWORD, "role": "user"})


# --- the password check holds no transaction ----------------------------------------------


def open_transactions(app_client: TestClient) -> int:
    """How many transactions other than the probe's own are open on the store right now."""
    db = app_client.app.state.ctx.db  # type: ignore[attr-defined]
    if db.is_sqlite:
        # A write transaction holds SQLite's file lock: a second writer cannot begin.
        probe = sa.create_engine(db.url, connect_args={"timeout": 0})
        try:
            with probe.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                conn.exec_driver_sql("ROLLBACK")
            return 0
        except sa.exc.OperationalError:
            return 1
        finally:
            probe.dispose()
    with db.engine.connect() as conn:
        idle: int = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
        ).scalar_one()
        return idle


def test_a_password_check_holds_no_transaction_that_would_stall_writes(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six bogus logins in flight took a setting write from 4 ms to 260 ms: scrypt ran inside
    the login's write transaction. The check must run with no transaction open."""
    seen: list[int] = []
    real_scrypt = hashlib.scrypt

    def observed_scrypt(*args: Any, **kwargs: Any) -> bytes:
        # The app's own background work (a lease renewal, the linker's housekeeping) may be
        # between two statements of a transaction at any instant; a transaction the login
        # held would still be open a few samples later, since it lasts as long as this check.
        samples = []
        for _ in range(3):
            samples.append(open_transactions(app_client))
            time.sleep(0.02)
        seen.append(min(samples))
        return real_scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", observed_scrypt)
    assert login(app_client, "admin", "wrong").status_code == 401
    assert login(app_client, "nobody", "wrong").status_code == 401
    assert login(app_client, "admin", ADMIN_PASSWORD).status_code == 200
    assert seen and seen == [0] * len(seen)


@pytest.mark.parametrize(
    "count",
    [
        10,  # as many as the store could be asked to wait for (a check once held its write lock)
        60,  # more than the 40 worker threads that every other (blocking) route needs
    ],
)
def test_a_setting_write_goes_through_while_bad_logins_are_in_their_password_check(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """Password checks held inside scrypt (each login from its own address, so none is
    throttled) stall neither the store nor the threads of other requests."""
    with logins_held_in_scrypt(api, monkeypatch, count):
        written = threading.Thread(target=api.set_setting, args=("written", True), daemon=True)
        written.start()
        wait_until(lambda: not written.is_alive(), f"a setting write beside {count} held logins")
    assert api.ok("GET", "/setting/written")["value"] is True


@contextlib.contextmanager
def logins_held_in_scrypt(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch, count: int
) -> Iterator[None]:
    """``count`` bad logins in flight on the app's own event loop (so that they compete with
    other requests for its worker threads), all arrived, their password checks stopped inside
    scrypt until the block ends; each is then refused (401)."""
    release = threading.Event()
    checks: list[int] = []
    arrived: list[str] = []
    real_scrypt = hashlib.scrypt

    def held_scrypt(*args: Any, **kwargs: Any) -> bytes:
        checks.append(1)
        release.wait(60)
        return real_scrypt(*args, **kwargs)

    app = api.client.app

    async def counting_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            arrived.append(scope["path"])
        await app(scope, receive, send)

    async def attempt(number: int) -> int:
        transport = httpx.ASGITransport(counting_app, client=(f"192.0.2.{number}", 1))
        async with httpx.AsyncClient(transport=transport, base_url=API_URL) as client:
            body = {"user_name": f"nobody-{number}", "password": "wrong"}
            return (await client.post("/auth/login", json=body)).status_code

    async def flood() -> list[int]:
        return list(await asyncio.gather(*(attempt(n) for n in range(count))))

    monkeypatch.setattr(hashlib, "scrypt", held_scrypt)
    portal = api.client.portal  # the event loop that the app (entered by app_client) runs on
    assert portal is not None
    statuses = portal.start_task_soon(flood)
    try:
        wait_until(
            lambda: len(arrived) == count and len(checks) >= passwords.MAX_HASHING,
            f"{count} logins to arrive and {passwords.MAX_HASHING} to be in their check",
        )
        yield
    finally:
        release.set()
    assert statuses.result(60) == [401] * count


# --- throttling -------------------------------------------------------------------------


def test_failed_logins_are_throttled_per_user_with_retry_after(
    api: ApiClient, clock: FakeClock
) -> None:
    for _ in range(throttle.MAX_FAILURES_PER_USER):
        assert login(api.client, "admin", "wrong").status_code == 401
    answer = login(api.client, "admin", ADMIN_PASSWORD)  # even the right one: not checked
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"] == "too_many_logins"
    assert 0 < int(answer.headers["retry-after"]) <= throttle.WINDOW_S
    make_user(api, "bob")
    assert login(api.client, "bob", PASSWORD).status_code == 200  # another user is not held
    clock.advance(throttle.WINDOW_S)
    assert login(api.client, "admin", ADMIN_PASSWORD).status_code == 200


def test_failed_logins_are_throttled_per_client_address(settings: config.Settings) -> None:
    app = create_app(settings)
    with TestClient(app, base_url=API_URL, client=("192.0.2.1", 1)) as bad:
        good = TestClient(app, base_url=API_URL, client=("192.0.2.2", 1))  # no second lifespan
        for number in range(throttle.MAX_FAILURES_PER_ADDRESS):
            assert login(bad, f"guess-{number}", "wrong").status_code == 401
        answer = login(bad, "admin", ADMIN_PASSWORD)
        assert answer.status_code == 429 and "from this address" in answer.json()["message"]
        assert "retry-after" in answer.headers
        assert login(good, "admin", ADMIN_PASSWORD).status_code == 200


def test_a_login_form_flood_is_throttled_too(app_client: TestClient) -> None:
    """The UI's login form answers 429 with Retry-After like the API."""
    client = TestClient(app_client.app, follow_redirects=False)
    for _ in range(throttle.MAX_FAILURES_PER_USER + 1):
        page = client.get("/ui/login").text
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        answer = client.post(
            "/ui/login", data={"user_name": "admin", "password": "wrong", "csrf_token": token}
        )
    assert answer.status_code == 429 and "retry-after" in answer.headers
    assert "too many failed logins" in answer.text


# --- scrypt cost and rehash -------------------------------------------------------------


def old_cost_hash(password: str) -> str:
    """A hash as tether made them before issue 15: N=2^14, r=8, p=1."""
    salt = b"s" * 16
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, n=2**14, r=8, p=1)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


def stored_hash(app_client: TestClient, name: str) -> str:
    with app_client.app.state.ctx.db.read() as conn:  # type: ignore[attr-defined]
        return user_rows.get(conn, name).password_hash


def test_scrypt_cost_is_owasps_and_an_old_hash_is_rehashed_on_a_good_login(
    api: ApiClient, app_client: TestClient
) -> None:
    assert passwords.SCRYPT["n"] * passwords.SCRYPT["p"] >= 2**14 * 5  # OWASP's minimum
    make_user(api, "bob")
    assert stored_hash(app_client, "bob").startswith("scrypt$16384$8$5$")
    with app_client.app.state.ctx.db.begin() as conn:  # type: ignore[attr-defined]
        user_rows.update(conn, "bob", password_hash=old_cost_hash(PASSWORD))
    assert login(app_client, "bob", "wrong").status_code == 401
    assert stored_hash(app_client, "bob") == old_cost_hash(PASSWORD)  # no rehash on failure
    assert login(app_client, "bob", PASSWORD).status_code == 200
    rehashed = stored_hash(app_client, "bob")
    assert rehashed.startswith("scrypt$16384$8$5$") and not passwords.needs_rehash(rehashed)
    assert login(app_client, "bob", PASSWORD).status_code == 200


def test_two_good_logins_at_once_with_an_old_hash_both_succeed(
    api: ApiClient, app_client: TestClient
) -> None:
    """The second finds the hash rehashed by the first: it checks again instead of refusing."""
    make_user(api, "bob")
    with app_client.app.state.ctx.db.begin() as conn:  # type: ignore[attr-defined]
        user_rows.update(conn, "bob", password_hash=old_cost_hash(PASSWORD))
    barrier = threading.Barrier(3)
    statuses: list[int] = []

    def log_in() -> None:
        barrier.wait()
        statuses.append(login(app_client, "bob", PASSWORD).status_code)

    threads = [threading.Thread(target=log_in) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200, 200]
    assert not passwords.needs_rehash(stored_hash(app_client, "bob"))


# --- sessions end -----------------------------------------------------------------------


@pytest.fixture
def short_sessions(
    settings: config.Settings,
) -> Iterator[Callable[[], tuple[ApiClient, FakeClock]]]:
    """A workspace whose sessions last 600 s at most and 120 s idle, on a fake clock."""
    stack: list[TestClient] = []

    def build() -> tuple[ApiClient, FakeClock]:
        changed = dataclasses.replace(settings, session_ttl_s=600.0, session_idle_s=120.0)
        client = TestClient(create_app(changed), base_url="http://testserver/api/latest")
        client.__enter__()
        stack.append(client)
        fake = FakeClock()
        client.app.state.ctx.clock = fake  # type: ignore[attr-defined]
        return ApiClient.login(client, "admin", ADMIN_PASSWORD), fake

    yield build
    for client in stack:
        client.__exit__(None, None, None)


def last_used_at(api: ApiClient) -> float | None:
    digest = hashlib.sha256(api.token.encode()).hexdigest()
    with api.client.app.state.ctx.db.read() as conn:
        used_at: float | None = conn.execute(
            sa.select(schema.token.c.last_used_at).where(schema.token.c.digest == digest)
        ).scalar_one()
        return used_at


def test_a_token_past_its_lifetime_is_refused_even_while_kept_in_memory(
    short_sessions: Callable[[], tuple[ApiClient, FakeClock]],
) -> None:
    api, clock = short_sessions()
    for _ in range(6):  # used every 100 s: never idle, and kept in memory
        assert api.get("/auth/me").status_code == 200
        clock.advance(100)
    answer = api.get("/auth/me")
    assert answer.status_code == 401 and answer.json()["error"] == "session_expired"


def test_an_idle_token_is_refused(
    short_sessions: Callable[[], tuple[ApiClient, FakeClock]],
) -> None:
    api, clock = short_sessions()
    assert api.get("/auth/me").status_code == 200
    clock.advance(119)
    assert api.get("/auth/me").status_code == 200  # used just in time: idle time restarts
    clock.advance(119)
    assert api.get("/auth/me").status_code == 200
    clock.advance(121)
    answer = api.get("/flow")
    assert answer.status_code == 401 and answer.json()["error"] == "session_expired"


def test_idle_tracking_writes_last_use_at_most_once_a_minute(
    short_sessions: Callable[[], tuple[ApiClient, FakeClock]],
) -> None:
    api, clock = short_sessions()
    assert last_used_at(api) is None
    for _ in range(20):
        assert api.get("/auth/me").status_code == 200
        clock.advance(2)  # 40 s in all: no write yet
    assert last_used_at(api) is None
    clock.advance(21)
    assert api.get("/auth/me").status_code == 200
    written = last_used_at(api)
    assert written == clock.now
    for _ in range(20):
        assert api.get("/auth/me").status_code == 200
    assert last_used_at(api) == written


def test_an_expired_ui_session_goes_back_to_the_login_page(
    short_sessions: Callable[[], tuple[ApiClient, FakeClock]],
) -> None:
    api, clock = short_sessions()
    client = TestClient(api.client.app, follow_redirects=False)
    page = client.get("/ui/login").text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post(
        "/ui/login", data={"user_name": "admin", "password": ADMIN_PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 303
    assert "Max-Age=600" in answer.headers["set-cookie"]
    assert client.get("/ui/flows").status_code == 200
    clock.advance(121)
    answer = client.get("/ui/flows")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
