"""The HTML UI under /ui: server-rendered pages over the same use cases and role rules as the API.

One module per page group; see docs/ui.md for why pages are rendered on the server.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from tether.web.pages import (
    auth,
    common,
    connectors,
    executions,
    files,
    flows,
    links,
    messages,
    settings,
    users,
)

STATIC_PATH = "/ui/static"

router = APIRouter(include_in_schema=False)
for _module in (auth, flows, executions, messages, settings, files, links, connectors, users):
    router.include_router(_module.router)


def static_files() -> StaticFiles:
    """The stylesheet and script the pages load, served under STATIC_PATH."""
    return StaticFiles(directory=common.STATIC_DIR)
