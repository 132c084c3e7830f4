"""Connector use cases: named connectors that flows use with this.connect, credentials sealed.

Credentials are encrypted with the workspace secret before they reach the store, as the link
keys are, and no answer of this module but ``unsealed`` carries them in clear text.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tether import errors
from tether.actions.context import Context
from tether.store import connectors
from tether.store.connectors import Connector

# The task types a connector or this.task can have; the child runs each (runner/tasks).
TASK_TYPES = ("REST", "SMTP", "SSH", "SFTP", "SCP")
NAME_PATTERN = r"^[A-Za-z0-9_.\- ]{1,200}$"
# Its own key, derived from the workspace secret: a connector's sealed credentials cannot be
# passed off as a sealed link key or the other way round.
_HKDF_INFO = b"tether connector credentials"


def seal(secret: bytes, value: dict[str, Any]) -> str:
    """``value`` as JSON, encrypted for storage under the workspace secret."""
    return _fernet(secret).encrypt(json.dumps(value).encode()).decode("ascii")


def unseal(secret: bytes, token: str) -> dict[str, Any]:
    """What ``seal`` stored."""
    try:
        return dict(json.loads(_fernet(secret).decrypt(token)))
    except (InvalidToken, ValueError) as exc:
        raise errors.ConnectorInvalid(
            field="stored credentials",
            detail="they cannot be decrypted with this workspace's secret: was the secret "
            "file replaced? An admin can set the credentials again",
        ) from exc


def _fernet(secret: bytes) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret)))


def check_type(task_type: Any) -> str:
    """A task type of TASK_TYPES, or ConnectorInvalid naming them."""
    if task_type not in TASK_TYPES:
        raise errors.ConnectorInvalid(
            field="type",
            detail=f"{task_type!r} is not a task type; use one of {', '.join(TASK_TYPES)}",
        )
    return str(task_type)


def _checked_object(field: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.ConnectorInvalid(
            field=field, detail=f"must be a JSON object, not {type(value).__name__}"
        )
    return value


def create(
    ctx: Context,
    *,
    name: str,
    type: str,
    host: str | None = None,
    value: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    description: str = "",
) -> Connector:
    """Save a new connector."""
    now = ctx.now()
    creds = _checked_object("credentials", credentials)
    item = Connector(
        name=name,
        type=check_type(type),
        host=host,
        value=_checked_object("value", value),
        credentials=seal(ctx.secret, creds) if creds else None,
        description=description,
        created_at=now,
        updated_at=now,
    )
    with ctx.transaction() as tx:
        connectors.insert(tx.conn, item)
    return item


def change(ctx: Context, name: str, **changes: Any) -> Connector:
    """Change fields of a connector; ``credentials`` replaces all of them ({} clears them)."""
    values: dict[str, Any] = {"updated_at": ctx.now()}
    if "type" in changes:
        values["type"] = check_type(changes["type"])
    if "value" in changes:
        values["value"] = _checked_object("value", changes["value"])
    if "credentials" in changes:
        creds = _checked_object("credentials", changes["credentials"])
        values["credentials"] = seal(ctx.secret, creds) if creds else None
    for field in ("host", "description"):
        if field in changes:
            values[field] = changes[field]
    with ctx.transaction() as tx:
        connectors.update(tx.conn, name, **values)
        return connectors.get(tx.conn, name)


def delete(ctx: Context, name: str) -> None:
    with ctx.transaction() as tx:
        connectors.delete(tx.conn, name)


def get(ctx: Context, name: str) -> Connector:
    with ctx.db.read() as conn:
        return connectors.get(conn, name)


def list_all(ctx: Context) -> list[Connector]:
    with ctx.db.read() as conn:
        return connectors.list_all(conn)


def credential_names(ctx: Context, item: Connector) -> list[str]:
    """The names of the credentials a connector holds (never their values)."""
    return sorted(unseal(ctx.secret, item.credentials)) if item.credentials else []


def fixed_inputs(secret: bytes, item: Connector) -> dict[str, Any]:
    """The inputs a connector sets, credentials included: a flow cannot change them."""
    fixed = dict(item.value)
    if item.host:
        fixed["host"] = item.host
    if item.credentials:
        fixed.update(unseal(secret, item.credentials))
    return fixed
