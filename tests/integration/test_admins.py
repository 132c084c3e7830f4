"""The last admin cannot be locked out, a forgotten password is reset offline, and the data
directory is private (issue 15)."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.workspace import ADMIN_PASSWORD, ApiClient
from tether import config, errors
from tether.actions import users
from tether.store import users as user_rows
from tether.store.users import User
from tether.web.app import create_app

PASSWORD = "a-long-enough-password"
API_URL = "http://testserver/api/latest"


def make_user(api: ApiClient, name: str, role: str) -> ApiClient:
    api.ok("POST", "/user", json={"name": name, "password": PASSWORD, "role": role})
    return ApiClient.login(api.client, name, PASSWORD)


# --- the last admin ---------------------------------------------------------------------


def test_the_last_enabled_admin_cannot_be_demoted_or_disabled(api: ApiClient) -> None:
    for change in ({"role": "workspace_admin"}, {"role": "user"}, {"is_enabled": False}):
        answer = api.patch("/user/admin", json=change)
        assert answer.status_code == 409, (change, answer.text)
        assert "last enabled organization admin" in answer.json()["message"]
    assert api.ok("GET", "/auth/me")["role"] == "organization_admin"
    assert api.patch("/user/admin", json={"password": "another-long-password"}).is_success


def test_an_admin_may_go_while_another_enabled_admin_stays(api: ApiClient) -> None:
    make_user(api, "second", "organization_admin")
    api.ok("PATCH", "/user/second", json={"is_enabled": False})
    answer = api.patch("/user/admin", json={"role": "user"})  # 'second' is disabled
    assert answer.status_code == 409
    api.ok("PATCH", "/user/second", json={"is_enabled": True})
    second = ApiClient.login(api.client, "second", PASSWORD)
    second.ok("PATCH", "/user/admin", json={"role": "user"})
    assert second.patch("/user/second", json={"role": "user"}).status_code == 409
    second.ok("PATCH", "/user/admin", json={"role": "organization_admin"})
    second.ok("DELETE", "/user/admin")


def test_two_admins_removing_each_other_at_once_leave_one(app_client: TestClient) -> None:
    """Both requests passed their role check; the transactions decide, and one is refused."""
    ctx = app_client.app.state.ctx  # type: ignore[attr-defined]
    removals: list[Callable[[User, str], Any]] = [
        lambda actor, name: users.change(ctx, actor, name, role="user"),
        lambda actor, name: users.change(ctx, actor, name, is_enabled=False),
        lambda actor, name: users.delete(ctx, actor, name),
    ]
    keeper = "admin"  # the one enabled admin before each round
    for number, (first, second) in enumerate(itertools.permutations(removals, 2)):
        with ctx.db.read() as conn:
            old = user_rows.get(conn, keeper)
        new = users.create(ctx, old, f"other{number}", PASSWORD, users.ORGANIZATION_ADMIN)
        outcomes = race(
            functools.partial(first, old, new.name), functools.partial(second, new, old.name)
        )
        assert sorted(outcomes) == ["done", "refused"], outcomes
        with ctx.db.read() as conn:
            remaining = [u.name for u in user_rows.list_all(conn) if is_enabled_admin(u)]
        assert len(remaining) == 1, remaining
        keeper = remaining[0]


def race(*actions: Callable[[], Any]) -> list[str]:
    """Run ``actions`` at once; each outcome is 'done' or 'refused' (409 LastAdmin)."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[str] = []

    def run(action: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            action()
            outcomes.append("done")
        except errors.LastAdmin:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def is_enabled_admin(user: User) -> bool:
    return user.role == users.ORGANIZATION_ADMIN and user.is_enabled


# --- reset-password and TETHER_ADMIN_PASSWORD -------------------------------------------


def tether_admin(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Any:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    return subprocess.run(
        [sys.executable, "-m", "tether.cli", "admin", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        timeout=60,
    )


def store_args(settings: config.Settings) -> list[str]:
    if settings.database_url and not settings.database_url.startswith("sqlite"):
        return ["--database-url", settings.database_url]
    return ["--data-dir", str(settings.data_dir)]


@pytest.fixture
def own_store_settings(settings: config.Settings) -> config.Settings:
    """The workspace's settings with SQLite in its data directory, as `tether serve` has it."""
    if settings.database_url and settings.database_url.startswith("sqlite"):
        return dataclasses.replace(settings, database_url=None)
    return settings


def log_in_fresh(settings: config.Settings, password: str) -> int:
    with TestClient(create_app(settings), base_url=API_URL) as client:
        answer = client.post("/auth/login", json={"user_name": "admin", "password": password})
        status: int = answer.status_code
        return status


def test_a_forgotten_password_is_reset_offline(own_store_settings: config.Settings) -> None:
    settings = own_store_settings
    assert log_in_fresh(settings, ADMIN_PASSWORD) == 200
    done = tether_admin(
        "reset-password", "admin", *store_args(settings), stdin="new-long-password\n"
    )
    assert done.returncode == 0, done.stderr
    assert "set the password of 'admin'" in done.stdout
    assert log_in_fresh(settings, ADMIN_PASSWORD) == 401
    assert log_in_fresh(settings, "new-long-password") == 200
    env = {"TETHER_NEW_PASSWORD": "third-long-password"}
    done = tether_admin("reset-password", "admin", *store_args(settings), env=env)
    assert done.returncode == 0, done.stderr
    assert log_in_fresh(settings, "third-long-password") == 200


def test_reset_password_names_what_is_wrong(
    own_store_settings: config.Settings, tmp_path: Path
) -> None:
    settings = own_store_settings
    log_in_fresh(settings, ADMIN_PASSWORD)
    done = tether_admin("reset-password", "nobody", *store_args(settings), stdin="long-password\n")
    assert done.returncode == 1 and "user 'nobody' does not exist" in done.stderr
    done = tether_admin("reset-password", "admin", *store_args(settings), stdin="short\n")
    assert done.returncode == 1 and "8 characters" in done.stderr
    done = tether_admin("reset-password", "admin", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == 1 and "no store at" in done.stderr
    assert not (tmp_path / "none").exists()


def test_admin_password_on_an_existing_store_is_ignored_with_a_pointer(
    settings: config.Settings, caplog: pytest.LogCaptureFixture
) -> None:
    log_in_fresh(settings, ADMIN_PASSWORD)
    changed = dataclasses.replace(settings, admin_password="a-different-password")
    with caplog.at_level(logging.WARNING):
        assert log_in_fresh(changed, "a-different-password") == 401
    assert any("tether admin reset-password" in r.getMessage() for r in caplog.records)
    assert log_in_fresh(changed, ADMIN_PASSWORD) == 200


# --- the data directory -----------------------------------------------------------------


@pytest.fixture
def wide_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_the_data_directory_is_private_whatever_the_umask(
    own_store_settings: config.Settings, wide_umask: None
) -> None:
    settings = own_store_settings
    with TestClient(create_app(settings), base_url=API_URL) as client:
        api = ApiClient.login(client, "admin", ADMIN_PASSWORD)
        api.set_setting("s", "x" * 10_000)  # the WAL grows
        found = modes(settings.data_dir)
    expected_files = {"secret.key"} | (
        {"tether.sqlite3", "tether.sqlite3-wal", "tether.sqlite3-shm"}
        if settings.database_url is None
        else set()
    )
    assert expected_files <= set(found), found
    for name, mode in found.items():
        is_dir = (settings.data_dir / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))


def test_a_data_directory_made_by_hand_is_made_private(
    own_store_settings: config.Settings,
) -> None:
    settings = own_store_settings
    (settings.data_dir / "keys").mkdir(parents=True)
    settings.data_dir.chmod(0o755)
    (settings.data_dir / "keys").chmod(0o755)
    (settings.data_dir / "keys" / "tls.key").write_text("x")
    (settings.data_dir / "keys" / "tls.key").chmod(0o644)
    with TestClient(create_app(settings), base_url=API_URL):
        found = modes(settings.data_dir)
    assert found["."] == 0o700 and found["keys"] == 0o700 and found["keys/tls.key"] == 0o600
