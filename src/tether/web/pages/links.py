"""Link pages (organization admins): sync configs with live state, their form, key pair, status, pairing.

Private keys are write-only here as in the API: the browser never receives one.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from tether import errors
from tether.actions.context import Context
from tether.link import configs, keys
from tether.web.auth import context
from tether.web.pages import common
from tether.web.pages.common import FieldErrors, Form
from tether.web.routes import sync_configs as sync_routes
from tether.web.routes.sync_configs import SyncConfigChange, SyncConfigIn

router = APIRouter(
    prefix="/ui/links",
    route_class=common.PageRoute,
    dependencies=[Depends(common.require_page("manage sync configs"))],
)
TEXT_FIELDS = ("name", "remote_url", "role", "ca_certificate", "sync_interval", "run_as")
KEY_FIELDS = ("own_private_key", "remote_public_key")
FLAGS = ("enabled", "verify_ssl", "send_all_executions", "allow_onward_remote")
GENERATE = "generate_key"
# use-case field names -> form field names
FORM_FIELD = {"sync_interval_s": "sync_interval", "remote_public_keys": "remote_public_key"}


def _link_url(name: str) -> str:
    return "/ui/links/" + urllib.parse.quote(name)


def sync_url(request: Request, name: str) -> str:
    """This workspace's sync URL for sync config ``name``, as the other side must dial it."""
    base = request.app.state.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/api/latest/sync_config/{urllib.parse.quote(name)}/sync"


@router.get("")
def list_links(request: Request, ctx: Context = Depends(context)) -> Response:
    return common.render(
        request, "links/list.html", links=sync_routes.list_sync_configs(request, ctx)
    )


@router.get("/table")
def links_table(request: Request, ctx: Context = Depends(context)) -> Response:
    """The list's table alone, which the page reloads to keep the states live."""
    return common.render(
        request, "links/table.html", links=sync_routes.list_sync_configs(request, ctx)
    )


def _form_from(view: dict[str, Any]) -> Form:
    """The edit form's fields from the API's view of a sync config (keys stay empty)."""
    form = {k: "" if view.get(k) is None else str(view[k]) for k in TEXT_FIELDS}
    form.update({k: "on" if view[k] else "" for k in FLAGS})
    if view["sync_interval"] is not None:
        form["sync_interval"] = f"{view['sync_interval']:g}"
    scripts = view["accepted_scripts"]
    form["accepted_scripts"] = scripts if isinstance(scripts, str) else "\n".join(scripts)
    form["max_running"] = "" if view["max_running"] is None else str(view["max_running"])
    return form


def _accepted_scripts(text: str) -> str | list[str]:
    """The form's accepted scripts as the API takes them: "any", or the digests listed."""
    digests = text.replace(",", " ").split()
    # An emptied list runs nothing: clearing the field must not open the link to any script.
    return configs.ANY_SCRIPT if digests == [configs.ANY_SCRIPT] else digests


# Several public keys in one field: PEM blocks, or one OpenSSH key a line.
PUBLIC_KEY_TEXT = re.compile(
    r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----|^ssh-\S+ .*$", re.S | re.M
)


def _public_keys(text: str) -> str | list[str]:
    """The other side's keys as typed: one text, or a list when the field holds several (as
    during a key rotation, the old and the new key)."""
    found = PUBLIC_KEY_TEXT.findall(text)
    return found if len(found) > 1 else text


def _api_values(form: Form, *, is_new: bool) -> dict[str, Any]:
    """The form as the API's request body: key fields only when typed, since they are write-only."""
    values: dict[str, Any] = {k: form.get(k, "").strip() for k in ("remote_url", "ca_certificate")}
    values.update({k: form.get(k) == "on" for k in FLAGS})
    values["role"] = form.get("role") or None
    values["sync_interval"] = form.get("sync_interval", "").strip() or None
    # A form without the policy fields (posted by hand) leaves the policy as it is.
    if "accepted_scripts" in form:
        values["accepted_scripts"] = _accepted_scripts(form["accepted_scripts"])
    for field in ("run_as", "max_running"):
        if field in form:
            values[field] = form[field].strip() or None
    for key in KEY_FIELDS:
        if form.get(key, "").strip():
            values[key] = form[key]
    if "remote_public_key" in values:
        values["remote_public_key"] = _public_keys(values["remote_public_key"])
    if is_new:
        values["name"] = form.get("name", "").strip()
    if form.get("action") == GENERATE:
        values["own_private_key"] = keys.private_pem(keys.generate_private_key())
    return {k: v for k, v in values.items() if not (k == "role" and v is None)}


def _use_case_values(body: SyncConfigChange) -> dict[str, Any]:
    renamed = {
        "enabled": "is_enabled",
        "remote_public_key": "remote_public_keys",
        "sync_interval": "sync_interval_s",
    }
    return {renamed.get(k, k): v for k, v in body.model_dump(exclude_unset=True).items()}


def _refusal(exc: errors.TetherError) -> FieldErrors:
    """The form field a use case's refusal belongs to."""
    if isinstance(exc, errors.NameTaken):
        return {"name": exc.message}
    field = str(exc.fields.get("field", "form"))
    return {FORM_FIELD.get(field, field): exc.message}


def _form_page(
    request: Request,
    form: Form,
    problems: FieldErrors,
    *,
    view: dict[str, Any] | None = None,
) -> Response:
    """The create or edit form again, with the messages and everything typed (keys included)."""
    return common.render(
        request, "links/form.html", status_code=400, form=form, errors=problems, view=view
    )


@router.get("/new")
def new_link_page(request: Request) -> Response:
    form = {"enabled": "on", "verify_ssl": "on", "role": "", "accepted_scripts": "any"}
    return common.render(request, "links/form.html", form=form, view=None)


@router.post("/new")
def create_link(
    request: Request, form: Form = Depends(common.read_form), ctx: Context = Depends(context)
) -> Response:
    body, problems = common.validate(SyncConfigIn, _api_values(form, is_new=True))
    if not problems:
        try:
            configs.create(ctx, _use_case_values(body))
        except (errors.InvalidInput, errors.NameTaken) as exc:
            problems = _refusal(exc)
    if problems:
        return _form_page(request, form, problems)
    return common.redirect(_link_url(body.name) + _generated(form))


def _generated(form: Form) -> str:
    return "?generated=1" if form.get("action") == GENERATE else "?saved=1"


@router.get("/{name}")
def link_page(request: Request, name: str, ctx: Context = Depends(context)) -> Response:
    view = sync_routes.get_sync_config(request, name, ctx)
    return common.render(
        request,
        "links/page.html",
        view=view,
        form=_form_from(view),
        status=sync_routes.sync_config_status(request, name, ctx),
        pairing=_pairing(request, ctx, view),
        is_generated=request.query_params.get("generated") == "1",
        is_saved=request.query_params.get("saved") == "1",
        is_next=request.query_params.get("next") == "1",
        is_rotated=request.query_params.get("rotated") == "1",
    )


@router.get("/{name}/status")
def status_panel(request: Request, name: str, ctx: Context = Depends(context)) -> Response:
    """The status panel alone, which the page reloads to keep the figures live."""
    status = sync_routes.sync_config_status(request, name, ctx)
    return common.render(request, "links/status.html", status=status)


@router.post("/{name}")
def change_link(
    request: Request,
    name: str,
    form: Form = Depends(common.read_form),
    ctx: Context = Depends(context),
) -> Response:
    view = sync_routes.get_sync_config(request, name, ctx)
    form = {**form, "name": name}
    body, problems = common.validate(SyncConfigChange, _api_values(form, is_new=False))
    if not problems:
        try:
            configs.change(ctx, name, _use_case_values(body))
        except errors.InvalidInput as exc:
            problems = _refusal(exc)
    if problems:
        return _form_page(request, form, problems, view=view)
    return common.redirect(_link_url(name) + _generated(form))


@router.post("/{name}/next_key")
def prepare_next_key(
    name: str, form: Form = Depends(common.read_form), ctx: Context = Depends(context)
) -> Response:
    """Key rotation, first step: make the key this side will sign with next (or discard it)."""
    is_discard = form.get("action") == "discard"
    pem = "" if is_discard else keys.private_pem(keys.generate_private_key())
    configs.change(ctx, name, {"next_own_private_key": pem})
    return common.redirect(_link_url(name) + ("?saved=1" if is_discard else "?next=1#rotation"))


@router.post("/{name}/rotate_key")
def rotate_key(name: str, ctx: Context = Depends(context)) -> Response:
    """Key rotation, last step: sign with the next key from now on; the old one is dropped."""
    configs.rotate_key(ctx, name)
    return common.redirect(_link_url(name) + "?rotated=1#rotation")


@router.post("/{name}/delete")
def delete_link(name: str, ctx: Context = Depends(context)) -> Response:
    configs.delete(ctx, name)
    return common.redirect("/ui/links")


def _pairing(request: Request, ctx: Context, view: dict[str, Any]) -> dict[str, Any]:
    """What the admin must paste into the other workspace, and what is still missing here."""
    other_role = "controlled" if view["role"] == "controlling" else "controlling"
    remote_url = view["remote_url"]
    other_name = configs.check_remote_url(remote_url) if remote_url else None
    return {
        "other_role": other_role,
        "is_dialer": bool(remote_url),
        "other_name": other_name,
        "other_base_url": remote_url.split("/api/latest/", 1)[0] if remote_url else None,
        "this_sync_url": sync_url(request, view["name"]),
        "suggested_name": ctx.workspace_name,
    }
