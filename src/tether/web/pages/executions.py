"""Execution pages: the filtered, paged list; one execution with its children, live log and Cancel."""

from __future__ import annotations

import datetime
import urllib.parse
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from tether import errors
from tether.actions import executions as execution_actions
from tether.actions import flows, messages
from tether.actions.context import Context
from tether.link import configs
from tether.statuses import STATUSES
from tether.store import executions
from tether.store.executions import Execution
from tether.store.users import User
from tether.web import render as api_render
from tether.web.auth import context
from tether.web.pages import common, times
from tether.web.pages.common import FieldErrors
from tether.web.routes import executions as execution_routes

router = APIRouter(
    prefix="/ui/executions",
    route_class=common.PageRoute,
    dependencies=[Depends(common.require_page("use the workspace"))],
)
PAGE_SIZE = 50
MAX_PAGE = 100_000
LOG_CHUNK = 1000
MAX_TREE_NODES = 500
MAX_TREE_DEPTH = 20
ORIGINS = {
    "local": "started here",
    "received": "received over a link",
    "mirror": "mirrored from a link",
}


@dataclass(frozen=True)
class LinkedPlace:
    """Where the other half of a linked execution lives, as far as this side knows."""

    sync_config: str
    remote_execution_id: str | None
    url: str | None  # the execution's page in the other workspace, when its address is known


def linked_place(
    ctx: Context, ex: Execution, bases: dict[str, str | None] | None = None
) -> LinkedPlace | None:
    """The other side of ``ex``: its sync config, remote id and, from a dialer's Remote URL, its page.

    ``bases``: the other sides' addresses found so far, by sync config, so that a tree of
    many remote children reads each sync config once.
    """
    if ex.sync_config is None:
        return None
    bases = {} if bases is None else bases
    if ex.sync_config not in bases:
        bases[ex.sync_config] = _remote_base(ctx, ex.sync_config)
    base = bases[ex.sync_config]
    url = None
    if base and ex.remote_execution_id:
        url = f"{base}/ui/executions/{urllib.parse.quote(ex.remote_execution_id)}"
    return LinkedPlace(ex.sync_config, ex.remote_execution_id, url)


def _remote_base(ctx: Context, name: str) -> str | None:
    """The other workspace's address, known on the side that dials it (from its Remote URL)."""
    try:
        config, _state, _depth = configs.get(ctx, name)
    except errors.SyncConfigNotFound:
        return None
    return config.remote_url.split("/api/latest/", 1)[0] if config.remote_url else None


FILTER_FIELDS = ("status", "flow", "origin", "text", "from", "to", "tz")


def _moment(text: str, tz_minutes: str) -> float | None:
    """A form's local date and time as Unix seconds; ``tz_minutes`` is the browser's offset
    (JavaScript's getTimezoneOffset, filled in by the page's script; UTC without it)."""
    moment = datetime.datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        offset = int(tz_minutes) if tz_minutes.lstrip("-").isdigit() else 0
        moment = moment.replace(tzinfo=datetime.UTC) + datetime.timedelta(minutes=offset)
    return moment.timestamp()


def _filters(query: dict[str, str]) -> tuple[dict[str, Any], FieldErrors]:
    """The store's filters from the list's query, and a message for each bound it cannot read."""
    found: dict[str, Any] = {
        "status": query["status"] if query["status"] in STATUSES else None,
        "flow_name": query["flow"].strip() or None,
        "origin": query["origin"] if query["origin"] in ORIGINS else None,
        "text": query["text"].strip() or None,
    }
    problems: FieldErrors = {}
    for field, key in (("from", "created_from"), ("to", "created_to")):
        if not query[field].strip():
            continue
        try:
            found[key] = _moment(query[field], query["tz"])
        except ValueError:
            problems[field] = "not a date and time: use the picker, or write 2026-12-31T23:59"
            continue
        if field == "to" and len(query[field].strip()) == len("2026-12-31T23:59"):
            found[key] += 59.999  # to the end of the minute it names
    return found, problems


def _listing(query: dict[str, str], page: str, ctx: Context) -> dict[str, Any]:
    """The values of the list page and of its live table, for one filter and page."""
    filters, problems = _filters(query)
    page_number = int(page) if page.isdigit() and 0 < int(page) <= MAX_PAGE else 1
    with ctx.db.read() as conn:
        found = executions.list_filtered(
            conn, **filters, limit=PAGE_SIZE + 1, offset=(page_number - 1) * PAGE_SIZE
        )

    def page_url(number: int) -> str:
        return "?" + urllib.parse.urlencode({**query, "page": number})

    return {
        "executions": found[:PAGE_SIZE],
        "query": query,
        "errors": problems,
        "table_query": urllib.parse.urlencode({**query, "page": page_number}),
        "page": page_number,
        "previous_url": page_url(page_number - 1) if page_number > 1 else None,
        "next_url": page_url(page_number + 1) if len(found) > PAGE_SIZE else None,
        "statuses": STATUSES,
        "origins": ORIGINS,
    }


def _query(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "") for name in FILTER_FIELDS}


@router.get("")
def list_executions(request: Request, page: str = "1", ctx: Context = Depends(context)) -> Response:
    values = _listing(_query(request), page, ctx)
    return common.render(request, "executions/list.html", **values)


@router.get("/table")
def executions_table(
    request: Request, page: str = "1", ctx: Context = Depends(context)
) -> Response:
    """The list's table alone, which the page reloads to keep statuses and durations live."""
    values = _listing(_query(request), page, ctx)
    return common.render(request, "executions/table.html", **values)


@dataclass(frozen=True)
class Node:
    """One execution of a tree of children, with where it runs and its own children."""

    ex: Execution
    place: LinkedPlace | None
    children: list[Node]


def child_tree(ctx: Context, parent_id: str) -> list[Node]:
    """The descendants of ``parent_id`` known on this side, oldest first at each level, read
    one level per query (at most MAX_TREE_NODES of them, MAX_TREE_DEPTH levels deep).

    A remote child's own children live in the other workspace; it shows as a leaf here.
    """
    bases: dict[str, str | None] = {}
    kids: dict[str, list[Execution]] = {}
    level, budget = [parent_id], MAX_TREE_NODES
    with ctx.db.read() as conn:
        for _depth in range(MAX_TREE_DEPTH):
            if not level or budget <= 0:
                break
            found = executions.children_of(conn, level, budget)
            budget -= len(found)
            for child in found:
                kids.setdefault(child.parent_id or "", []).append(child)
            level = [child.id for child in found]

    def nodes(node_id: str) -> list[Node]:
        return [
            Node(child, linked_place(ctx, child, bases), nodes(child.id))
            for child in kids.get(node_id, [])
        ]

    return nodes(parent_id)


def _has_flow_here(ctx: Context, ex: Execution) -> bool:
    """Whether the execution's flow exists here, so that its name can link to the flow's page."""
    if ex.flow_name is None or ex.origin != executions.LOCAL:
        return False
    try:
        flows.get(ctx, ex.flow_name)
    except errors.FlowNotFound:
        return False
    return True


def _summary(request: Request, ctx: Context, ex: Execution) -> dict[str, Any]:
    """What the page's live part shows: times, why it waits, and its children."""
    return {
        "ex": ex,
        "place": linked_place(ctx, ex),
        "waiting_on": execution_routes.waits_of(request, ctx, ex),
        "children": child_tree(ctx, ex.id),
        "origins": ORIGINS,
        "has_flow": _has_flow_here(ctx, ex),
    }


@router.get("/{execution_id}")
def execution_page(
    request: Request, execution_id: str, ctx: Context = Depends(context)
) -> Response:
    ex = execution_actions.get(ctx, execution_id)
    with ctx.db.read() as conn:
        log = executions.read_log(conn, ex.id, 0, LOG_CHUNK)
    return common.render(
        request,
        "executions/page.html",
        **_summary(request, ctx, ex),
        log=log,
        log_offset=(log[-1].seq + 1) if log else 0,
        is_cancellable=not ex.is_ended and ex.origin != executions.MIRROR,
        is_rerunnable=ex.origin == executions.LOCAL and ex.flow_name is not None,
        open_messages=messages.open_of(ctx, ex.id),
        next_url=f"/ui/executions/{ex.id}",
        problems={},
    )


@router.get("/{execution_id}/summary")
def summary(request: Request, execution_id: str, ctx: Context = Depends(context)) -> Response:
    """The page's live part alone (times, waiting, children), which the page reloads."""
    ex = execution_actions.get(ctx, execution_id)
    return common.render(request, "executions/summary.html", **_summary(request, ctx, ex))


@router.get("/{execution_id}/log.json")
def live_log(
    execution_id: str, offset: int = Query(default=0, ge=0), ctx: Context = Depends(context)
) -> dict[str, Any]:
    """Status and log entries from ``offset``, for the page's live log."""
    with ctx.db.read() as conn:
        ex = executions.get(conn, execution_id)
        entries = executions.read_log(conn, execution_id, offset, LOG_CHUNK)
    return {
        "status": ex.status,
        "is_ended": ex.is_ended,
        "entries": [
            {**api_render.log_entry(e), "time": times.iso(e.time), "utc": times.when(e.time)}
            for e in entries
        ],
    }


@router.post("/{execution_id}/rerun")
def rerun(
    execution_id: str, user: User = Depends(common.page_user), ctx: Context = Depends(context)
) -> Response:
    """Start the same flow again with the same inputs; the new execution names this one."""
    ex = execution_actions.rerun(ctx, execution_id, owner=user.name)
    return common.redirect(f"/ui/executions/{urllib.parse.quote(ex.id)}")


@router.post("/{execution_id}/cancel")
def cancel(execution_id: str, ctx: Context = Depends(context)) -> Response:
    execution_actions.cancel(ctx, execution_id)
    return common.redirect(f"/ui/executions/{urllib.parse.quote(execution_id)}")
