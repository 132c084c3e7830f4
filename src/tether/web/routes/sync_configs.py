"""REST routes for sync configs and link status (organization admins only), and the sync endpoint."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
)

from tether import errors
from tether.actions.context import Context
from tether.link import configs
from tether.store import sync_configs
from tether.store.sync_configs import LinkState, SyncConfig
from tether.web import link_lane, render
from tether.web.auth import context, require
from tether.web.contract import answers
from tether.web.routes.fields import Text, omittable

router = APIRouter(tags=["sync configs"])
admin_only = [Depends(require("manage sync configs"))]
ADMIN = (errors.Unauthenticated, errors.Forbidden)
CHANGE = (*ADMIN, errors.LinkConfigInvalid, errors.LinkPolicyInvalid, errors.Conflict)
FOUND = (*ADMIN, errors.SyncConfigNotFound)
# Beyond the long-poll hold (or the sync interval): a link that exchanged nothing for this
# long is not connected, whatever its last exchange said. A living dialer renews its poll
# within one hold on both sides; a few seconds cover the round trip and a busy machine.
SILENCE_GRACE_S = 5.0
# What configs.SHA256_HEX checks, said in the document (the validator keeps its message).
# What configs.check_remote_url and check_proxy_url take (empty: none), said in the document,
# for a host name or IPv4 address: not every bracketed IPv6 form a pattern allows is one.
_AUTHORITY = (
    r"https?://(?:[^\x00-\x20\x7f/?#@\[\]]+@)?[^\x00-\x20\x7f/?#@\[\]:]+"
    r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
)
REMOTE_URL = (
    r"^$|^" + _AUTHORITY + r"(?:/[^\x00-\x20\x7f?#]*)?/sync_config/[A-Za-z0-9_.\-]{1,100}/sync$"
)
PROXY_URL = r"^$|^" + _AUTHORITY + r"/?$"
Sha256 = Annotated[str, WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"})]


class SyncConfigChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool = omittable()
    remote_url: Text | None = Field(
        default=None, max_length=2000, json_schema_extra={"pattern": REMOTE_URL}
    )
    role: Literal["controlling", "controlled"] | None = None
    ca_certificate: Text | None = Field(default=None, max_length=100_000)
    verify_ssl: StrictBool = omittable()
    own_private_key: Text | None = Field(default=None, max_length=100_000)
    next_own_private_key: Text | None = Field(default=None, max_length=100_000)
    remote_public_key: Text | list[Text] = omittable(max_length=100_000)
    send_all_executions: StrictBool = omittable()
    sync_interval: float | None = Field(
        default=None, allow_inf_nan=False, json_schema_extra={"exclusiveMinimum": 0}
    )
    proxy_url: Text | None = Field(
        default=None,
        max_length=2000,
        json_schema_extra={"pattern": PROXY_URL},
        description="http://[USER:PASSWORD@]HOST:PORT; wins over HTTPS_PROXY/HTTP_PROXY; write-only "
        "(shown with its password as ***); an empty text goes back to the environment's",
    )
    accepted_scripts: Literal["any"] | list[Sha256] = omittable(
        max_length=configs.MAX_ACCEPTED_SCRIPTS
    )
    run_as: Text | None = Field(default=None, max_length=100)
    allow_onward_remote: StrictBool = omittable()
    max_running: int | None = Field(default=None, ge=1, le=1_000_000)

    @field_validator(
        "enabled", "verify_ssl", "send_all_executions", "allow_onward_remote", mode="before"
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Left out, a switch keeps its value; sent as null it would be stored as nothing.
        if value is None:
            raise ValueError("send true or false, or leave the field out")
        return value

    @field_validator("accepted_scripts", mode="before")
    @classmethod
    def _digests(cls, value: Any) -> Any:
        if value is None:
            raise ValueError('send "any" or a list of SHA-256 hex digests, or leave the field out')
        for item in value if isinstance(value, list) else ():
            if isinstance(item, str) and not configs.SHA256_HEX.fullmatch(item):
                raise ValueError(
                    f"{item[:80]!r} is not a SHA-256 digest: use the 64 hex digits that the "
                    "controlling workspace shows as the execution's script_sha256"
                )
        return value


class SyncConfigIn(SyncConfigChange):
    # configs.check_name refuses other names (with its message); the document says so.
    name: Text = Field(
        min_length=1,
        max_length=100,
        description="letters, digits, _ . -",
        json_schema_extra={"pattern": "^[A-Za-z0-9_.\\-]{1,100}$"},
    )


def _values(body: SyncConfigChange) -> dict[str, Any]:
    renamed = {
        "enabled": "is_enabled",
        "remote_public_key": "remote_public_keys",
        "sync_interval": "sync_interval_s",
    }
    given = body.model_dump(exclude_unset=True)
    return {renamed.get(k, k): v for k, v in given.items()}


def _view(
    request: Request, ctx: Context, config: SyncConfig, state: LinkState, depth: int
) -> dict[str, Any]:
    view = configs.describe(ctx, config, state, depth)
    view["state"] = effective_state(request, config, state)
    return view


def effective_state(request: Request, config: SyncConfig, state: LinkState) -> str:
    return effective_status(request, config, state)[0]


def effective_status(
    request: Request, config: SyncConfig, state: LinkState
) -> tuple[str, str | None]:
    """The link's state and last error as they stand now, not as the last exchange left them."""
    if not config.is_enabled:
        return sync_configs.DISABLED, None
    missing = configs.missing_keys(config)
    if missing is not None:
        return sync_configs.FAILING, missing
    if state.state == sync_configs.CONNECTED and _is_silent(request, config, state):
        since = render.iso(state.last_exchange_at)
        reach = "this side reach it" if config.is_dialer else "it reach this workspace"
        return sync_configs.CONNECTING, (
            f"no exchange with the other side since {since}: is it running, and can {reach}?"
        )
    return state.state, state.last_error


def _is_silent(request: Request, config: SyncConfig, state: LinkState) -> bool:
    """Whether the link exchanged nothing for longer than a living peer ever takes."""
    expected_s = max(request.app.state.settings.long_poll_s, config.sync_interval_s or 0)
    silent_s = request.app.state.ctx.now() - (state.last_exchange_at or 0)
    return bool(silent_s > expected_s + SILENCE_GRACE_S)


@router.get("/sync_config", dependencies=admin_only, responses=answers(*ADMIN))
def list_sync_configs(request: Request, ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    return [_view(request, ctx, *item) for item in configs.list_all(ctx)]


@router.post(
    "/sync_config",
    status_code=201,
    dependencies=admin_only,
    responses=answers(*CHANGE, errors.NameTaken),
)
def create_sync_config(
    request: Request, body: SyncConfigIn, ctx: Context = Depends(context)
) -> dict[str, Any]:
    values = _values(body)
    configs.create(ctx, values)
    return _view(request, ctx, *configs.get(ctx, body.name))


@router.get("/sync_config/{name}", dependencies=admin_only, responses=answers(*FOUND))
def get_sync_config(
    request: Request, name: Text, ctx: Context = Depends(context)
) -> dict[str, Any]:
    return _view(request, ctx, *configs.get(ctx, name))


@router.patch(
    "/sync_config/{name}",
    dependencies=admin_only,
    responses=answers(*CHANGE, errors.SyncConfigNotFound),
)
def change_sync_config(
    request: Request, name: Text, body: SyncConfigChange, ctx: Context = Depends(context)
) -> dict[str, Any]:
    configs.change(ctx, name, _values(body))
    return _view(request, ctx, *configs.get(ctx, name))


@router.delete(
    "/sync_config/{name}", status_code=204, dependencies=admin_only, responses=answers(*FOUND)
)
def delete_sync_config(name: Text, ctx: Context = Depends(context)) -> None:
    configs.delete(ctx, name)


@router.post(
    "/sync_config/{name}/rotate_key",
    dependencies=admin_only,
    responses=answers(*FOUND, errors.LinkConfigInvalid, errors.Conflict),
)
def rotate_sync_config_key(
    request: Request, name: Text, ctx: Context = Depends(context)
) -> dict[str, Any]:
    """Start signing with next_own_private_key (see the key rotation procedure in the docs)."""
    configs.rotate_key(ctx, name)
    return _view(request, ctx, *configs.get(ctx, name))


@router.get("/sync_config/{name}/status", dependencies=admin_only, responses=answers(*FOUND))
def sync_config_status(
    request: Request, name: Text, ctx: Context = Depends(context)
) -> dict[str, Any]:
    config, state, depth = configs.get(ctx, name)
    effective, last_error = effective_status(request, config, state)
    return {
        "name": name,
        "state": effective,
        "last_error": last_error,
        "failing_since": render.iso(state.failing_since),
        "last_exchange_at": render.iso(state.last_exchange_at),
        "direction": "dialer" if config.remote_url else "listener",
        "role": config.role,
        "remote_workspace": state.remote_workspace,
        "remote_role": state.remote_role,
        "remote_name": state.remote_name,
        "outbox_depth": depth,
        "sent_seq": state.next_seq - 1,
        "acked_seq": state.acked_seq,
        "applied_seq": state.applied_seq,
        # since this server process started: a share of repeats is what at-least-once
        # delivery costs (answers racing each other, retries after a cut)
        "messages_received": request.app.state.linker.message_counts(name),
        "backfill": {
            "enabled": config.send_all_executions,
            "total": state.backfill_total,
            "done": state.backfill_done,
            "is_complete": state.backfill_cursor == sync_configs.BACKFILL_DONE,
        },
    }


@router.post(
    "/sync_config/{name}/sync",
    include_in_schema=True,
    responses=answers(errors.EnvelopeRejected, errors.Forbidden, errors.PayloadTooLarge),
)
async def sync(name: str, request: Request) -> Response:
    """The link endpoint: signature only, no token. See docs/protocol.md.

    Served by ``web.link_lane`` ahead of the router; this route describes it in the OpenAPI
    document and answers the same way where the lane is not installed.
    """
    body = await request.body()
    return await link_lane.sync_response(
        request.app.state.linker.listener,
        name,
        body,
        request.headers,
        request.app.state.settings.max_body_bytes,
    )
