"""Browser fixtures: Debian's Chromium driven by Playwright, and two real `tether serve` workspaces.

No browser is ever downloaded: Playwright launches /usr/bin/chromium, which the set-up
(`./dev test`, and so `.ci/run`) installs from Debian's packages; where it is missing, the
tests are skipped and say how to install it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.workspace import ADMIN_PASSWORD, ServedWorkspace

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

OpenPage = Callable[..., "Page"]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright comes with the dev tools: run ./dev test"
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 860}


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, which the set-up installs; the browser tests skip where it is missing."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser tests need Debian's Chromium at {CHROMIUM}: `./dev test` installs it when "
            "run as root, or run `apt-get install chromium` (these tests never download a browser)"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    """Headless Chromium driven by Playwright, closed when the module's tests are done."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def _stop(workspace: ServedWorkspace) -> None:
    """Stop the workspace, then make sure nothing it started is left in its process group."""
    workspace.stop()
    if workspace.process is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(workspace.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServedWorkspace]]:
    """Two real workspaces, 'hub' and 'edge', on free loopback ports."""
    root = tmp_path_factory.mktemp("ui")
    started: dict[str, ServedWorkspace] = {}
    try:
        for name in ("hub", "edge"):
            workspace = ServedWorkspace(name, root / name, extra_args=["--cancel-grace-s", "1"])
            started[name] = workspace.start()
        yield started
    finally:
        for workspace in started.values():
            _stop(workspace)


@pytest.fixture
def new_page(browser: Browser) -> Iterator[OpenPage]:
    """Opens a page in a fresh browser context (its own cookies) on a workspace."""
    contexts = []

    def open_page(
        workspace: ServedWorkspace,
        user: str = "admin",
        password: str = ADMIN_PASSWORD,
        timezone_id: str | None = None,
    ) -> Page:
        context = browser.new_context(
            base_url=workspace.url, viewport=VIEWPORT, timezone_id=timezone_id
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/")
        page.fill("#user_name", user)
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/flows")
        return page

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> None:
    """Render the whole page; with TETHER_UPDATE_SCREENSHOTS=1 save it as docs/screenshots/NAME.png.

    A plain test run must not rewrite tracked files, so saving is opt-in.
    """
    if os.environ.get("TETHER_UPDATE_SCREENSHOTS") != "1":
        page.screenshot(full_page=True)
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def wait_rendered_ended(page: Page, timeout_ms: float = 30_000) -> None:
    """Wait for the execution page rendered as ended: its live log reloads the page once
    the execution has ended (to show its outputs), which would cut a navigation short."""
    page.wait_for_selector("#log:not([data-live-log])", state="attached", timeout=timeout_ms)
