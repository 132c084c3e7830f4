"""Shared fixtures: stores on SQLite and PostgreSQL, in-process apps, real `tether serve` processes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.configuration
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.support.workspace import ADMIN_PASSWORD, FLOW_WRITABLE, ApiClient
from tether import config
from tether.actions import passwords
from tether.web.app import create_app

PG_ENV = "TETHER_TEST_DATABASE_URL"
EXAMPLES_ENV = "TETHER_TEST_EXAMPLES"

# Hypothesis keeps caches (constants it read from the source) in a directory of its own:
# a temporary one, so that no .hypothesis/ is left in the work tree.
HYPOTHESIS_HOME = Path(tempfile.mkdtemp(prefix="tether-hypothesis-"))
hypothesis.configuration.set_hypothesis_home_dir(HYPOTHESIS_HOME)

# Property tests: the same examples on every run (so CI does not flicker), none stored in
# .hypothesis/, no per-example deadline (a request to a workspace may wait on the store).
# HYPOTHESIS_PROFILE=explore draws fresh examples each run, for a longer hunt by hand.
hypothesis.settings.register_profile(
    "tether",
    max_examples=int(os.environ.get(EXAMPLES_ENV, "200")),
    deadline=None,
    database=None,
    derandomize=True,
    print_blob=True,
)
hypothesis.settings.register_profile(
    "explore", parent=hypothesis.settings.get_profile("tether"), derandomize=False
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tether"))


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(HYPOTHESIS_HOME, ignore_errors=True)


def _postgres_database(base_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = "tether_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(
        base_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL: SQLite in a temporary directory, and PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(
            f"PostgreSQL tests are off: set {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    yield from _postgres_database(base)


# What a test's in-process app hashes passwords with, unless it is marked
# real_password_cost: scrypt at OWASP's cost takes a quarter second of CPU, once for the first
# admin and again at each login, which in-process tests did about a thousand times. (Django's
# documentation recommends the same for test settings.) Served workspaces, the tests of the
# hashing and of what logins cost the server keep the production cost.
TEST_SCRYPT = {"n": 2**4, "r": 8, "p": 1}


@pytest.fixture(autouse=True)
def password_cost(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_password_cost") is None:
        monkeypatch.setattr(passwords, "SCRYPT", TEST_SCRYPT)
    # The dummy hash (for refused logins) is made once, at the cost of the moment.
    passwords._dummy_hash.cache_clear()
    request.addfinalizer(passwords._dummy_hash.cache_clear)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> config.Settings:
    return config.Settings(
        data_dir=tmp_path / "data",
        name="test",
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        cancel_grace_s=1.0,
        sandbox_writable=(FLOW_WRITABLE,),
    )


@pytest.fixture
def app_client(settings: config.Settings) -> Iterator[TestClient]:
    """The workspace app with its runner started, driven in-process."""
    with TestClient(create_app(settings), base_url="http://testserver/api/latest") as client:
        yield client


@pytest.fixture
def api(app_client: TestClient) -> ApiClient:
    """An API client logged in as the organization admin."""
    return ApiClient.login(app_client, "admin", ADMIN_PASSWORD)


@pytest.fixture
def api_with(settings: config.Settings) -> Iterator[Callable[..., ApiClient]]:
    """Builds the app with some settings changed (``api_with(max_running=2)``), logged in as admin."""
    with contextlib.ExitStack() as stack:

        def build(**changes: Any) -> ApiClient:
            app = create_app(dataclasses.replace(settings, **changes))
            client = stack.enter_context(TestClient(app, base_url="http://testserver/api/latest"))
            return ApiClient.login(client, "admin", ADMIN_PASSWORD)

        yield build
