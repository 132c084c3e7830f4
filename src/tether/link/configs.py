"""Sync config use cases: validate and store one side's half of a link; keys stay write-only.

Key material is checked here (it needs the link's crypto) and encrypted before it is stored.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from dataclasses import replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from tether import errors
from tether.actions import executions as execution_actions
from tether.actions import users
from tether.actions.context import Context
from tether.link import keys
from tether.statuses import Event
from tether.store import database, outbox, sync_configs
from tether.store import users as store_users
from tether.store.sync_configs import LinkState, SyncConfig

NAME = re.compile(
    r"[A-Za-z0-9_.-]{1,100}"
)  # whole names only: fullmatch, as `$` allows a final newline
SYNC_PATH = re.compile(r"/sync_config/([A-Za-z0-9_.-]{1,100})/sync\Z")
_URL_SPACE = re.compile(r"[\x00-\x20\x7f]")  # urllib drops tabs and newlines before parsing
# What a controlled side lets its link run (meaningful only where role is controlled).
POLICY = ("accepted_scripts", "run_as", "allow_onward_remote", "max_running")
ANY_SCRIPT = "any"
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
MAX_ACCEPTED_SCRIPTS = 10_000
EDITABLE = (
    "is_enabled",
    "remote_url",
    "role",
    "ca_certificate",
    "verify_ssl",
    "own_private_key",
    "next_own_private_key",
    "remote_public_keys",
    "send_all_executions",
    "sync_interval_s",
    "proxy_url",
    *POLICY,
)


def is_name(name: str) -> bool:
    """Whether ``name`` is one a sync config can have."""
    return NAME.fullmatch(name) is not None


def check_proxy_url(url: str) -> None:
    """Refuse a proxy URL the dialer could not use, saying what to write instead."""
    parsed = _parsed_url(url)
    try:
        port = parsed.port if parsed is not None else -1
    except ValueError:
        port = -1
    if (
        parsed is None
        or _URL_SPACE.search(url)
        or parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or port == -1
        or parsed.path not in ("", "/")
        or parsed.query
        or parsed.fragment
    ):
        raise errors.LinkConfigInvalid(
            field="proxy_url",
            detail="use http://[USER:PASSWORD@]HOST:PORT (an HTTP proxy that allows CONNECT), "
            "or an empty text for the server's HTTPS_PROXY/HTTP_PROXY",
        )


def shown_proxy_url(url: str | None) -> str | None:
    """A proxy URL as the API shows it: its password replaced by ***."""
    if not url:
        return None
    parsed = urllib.parse.urlparse(url)
    if parsed.password is None:
        return url
    netloc = f"{parsed.username}:***@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    return parsed._replace(netloc=netloc).geturl()


def check_name(name: str) -> None:
    if not is_name(name):
        raise errors.LinkConfigInvalid(
            field="name", detail="use 1 to 100 letters, digits, '_', '.' or '-'"
        )


def _parsed_url(url: str) -> urllib.parse.ParseResult | None:
    """``url`` parsed, or None where urllib refuses it (a bracketed host that is no address)."""
    try:
        return urllib.parse.urlparse(url)
    except ValueError:
        return None


def check_remote_url(url: str) -> str:
    """The listener's sync config name, taken from a valid Remote URL."""
    parsed = _parsed_url(url)
    if (
        parsed is None
        or _URL_SPACE.search(url)
        or parsed.scheme not in ("http", "https")
        or not parsed.netloc
    ):
        raise errors.LinkConfigInvalid(
            field="remote_url",
            detail=f"'{url}' is not an http(s) URL; use https://HOST/api/latest/sync_config/NAME/sync",
        )
    match = SYNC_PATH.search(parsed.path)
    if not match or parsed.query or parsed.fragment:
        raise errors.LinkConfigInvalid(
            field="remote_url",
            detail=f"'{url}' must end in /sync_config/<name>/sync, where <name> is the sync config's name in the other workspace",
        )
    return match.group(1)


def check_ca_certificate(pem: str) -> None:
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise errors.LinkConfigInvalid(
            field="ca_certificate",
            detail=f"it is not a PEM certificate ({exc}); paste the CA's certificate, starting with -----BEGIN CERTIFICATE-----",
        ) from exc


def check_interval(value: float | None) -> None:
    # NaN passes a plain `<= 0` test and infinity would make the dialer sleep forever.
    if value is not None and not (math.isfinite(value) and value > 0):
        raise errors.LinkConfigInvalid(
            field="sync_interval",
            detail="it must be a positive number of seconds, or empty to deliver at once",
        )


def accepted_scripts(value: Any) -> list[str] | None:
    """The stored form of accepted_scripts: None for "any", else lower-case digests in order."""
    if value == ANY_SCRIPT:
        return None
    if not isinstance(value, list) or len(value) > MAX_ACCEPTED_SCRIPTS:
        raise errors.LinkPolicyInvalid(
            field="accepted_scripts",
            detail=f'send "any" or a list of at most {MAX_ACCEPTED_SCRIPTS} SHA-256 hex digests',
        )
    for item in value:
        if not isinstance(item, str) or not SHA256_HEX.fullmatch(item):
            raise errors.LinkPolicyInvalid(
                field="accepted_scripts",
                detail=f"{str(item)[:80]!r} is not a SHA-256 digest: use the 64 hex digits "
                "that the controlling workspace shows as the execution's script_sha256",
            )
    return list(dict.fromkeys(item.lower() for item in value))


def check_max_running(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise errors.LinkPolicyInvalid(
            field="max_running",
            detail="it must be a whole number of 1 or more, or empty for no cap of the link's own",
        )


def check_run_as(conn: database.Connection, name: str | None) -> None:
    """Refuse a run_as that names no user of this workspace."""
    if name is not None and store_users.find(conn, name) is None:
        raise errors.LinkPolicyInvalid(
            field="run_as",
            detail=f"no user '{name}' exists in this workspace: create that user first (its "
            "role bounds what received executions may do) or leave run_as empty for the "
            f"built-in account '{users.LINK_ACCOUNT}'",
        )


def _policy(changes: dict[str, Any]) -> dict[str, Any]:
    """The policy fields of ``changes``, checked and in their stored form."""
    policy: dict[str, Any] = {}
    if "accepted_scripts" in changes:
        policy["accepted_scripts"] = accepted_scripts(changes["accepted_scripts"])
    if "run_as" in changes:
        policy["run_as"] = changes["run_as"] or None
    if "max_running" in changes:
        check_max_running(changes["max_running"])
    if "allow_onward_remote" in changes:
        policy["allow_onward_remote"] = bool(changes["allow_onward_remote"])
    return policy


def create(ctx: Context, values: dict[str, Any]) -> SyncConfig:
    """Validate and store a new sync config."""
    name = str(values.get("name", ""))
    check_name(name)
    now = ctx.now()
    base = SyncConfig(
        name=name,
        is_enabled=True,
        remote_url=None,
        role="",
        ca_certificate=None,
        verify_ssl=True,
        own_private_key=None,
        next_own_private_key=None,
        remote_public_keys=[],
        send_all_executions=False,
        sync_interval_s=None,
        accepted_scripts=None,
        run_as=None,
        allow_onward_remote=False,
        max_running=None,
        proxy_url=None,
        created_at=now,
        updated_at=now,
    )
    config = _apply_changes(ctx, base, values, is_new=True)
    with ctx.transaction() as tx:
        check_run_as(tx.conn, config.run_as)
        sync_configs.insert(tx.conn, config)
        tx.publish(Event.CONFIG, name)
    return config


def change(ctx: Context, name: str, values: dict[str, Any]) -> SyncConfig:
    """Validate and apply changes to a sync config."""
    with ctx.transaction() as tx:
        current = sync_configs.get(tx.conn, name)
        config = _apply_changes(ctx, current, values, is_new=False)
        if "run_as" in values:
            check_run_as(tx.conn, config.run_as)
        changed = {k: getattr(config, k) for k in (*EDITABLE, "updated_at")}
        sync_configs.update(tx.conn, name, **changed)
        if config.send_all_executions and not current.send_all_executions:
            sync_configs.update_state(
                tx.conn, name, backfill_total=None, backfill_done=0, backfill_cursor=None
            )
        if "remote_public_keys" in values:  # other keys: the sender name may change too
            sync_configs.update_state(tx.conn, name, remote_name=None)
        state = sync_configs.get_state(tx.conn, name)
        if not config.is_enabled:
            sync_configs.update_state(tx.conn, name, state=sync_configs.DISABLED)
        elif state.state == sync_configs.DISABLED or state.state == sync_configs.FAILING:
            sync_configs.update_state(
                tx.conn, name, state=sync_configs.CONNECTING, last_error=None, failing_since=None
            )
        tx.publish(Event.CONFIG, name)
    return config


def delete(ctx: Context, name: str) -> None:
    """Delete a sync config; its unended executions end ENDED_ERROR, saying so."""
    with ctx.transaction() as tx:
        sync_configs.get(tx.conn, name)
        sync_configs.lock_inbox(tx.conn, name)  # the appliers' lock order: config, executions
        execution_actions.end_unfinished_of_link(ctx, tx, name)
        sync_configs.delete(tx.conn, name)
        tx.publish(Event.CONFIG, name)


def get(ctx: Context, name: str) -> tuple[SyncConfig, LinkState, int]:
    """A sync config, its link state and its outbox depth."""
    with ctx.db.read() as conn:
        return (
            sync_configs.get(conn, name),
            sync_configs.get_state(conn, name),
            outbox.depth(conn, name),
        )


def list_all(ctx: Context) -> list[tuple[SyncConfig, LinkState, int]]:
    with ctx.db.read() as conn:
        return [
            (config, sync_configs.get_state(conn, config.name), outbox.depth(conn, config.name))
            for config in sync_configs.list_all(conn)
        ]


def proxy_url(ctx: Context, config: SyncConfig) -> str | None:
    """The proxy this sync config dials through (credentials included), decrypted."""
    if not config.proxy_url:
        return None
    return keys.decrypt_with_secret(ctx.secret, config.proxy_url)


def own_private_key(ctx: Context, config: SyncConfig) -> rsa.RSAPrivateKey | None:
    """This side's signing key, decrypted with the workspace secret."""
    return _stored_key(ctx, config.own_private_key)


def next_own_private_key(ctx: Context, config: SyncConfig) -> rsa.RSAPrivateKey | None:
    """The key this side will sign with after the next rotation, if one is set."""
    return _stored_key(ctx, config.next_own_private_key)


def _stored_key(ctx: Context, encrypted: str | None) -> rsa.RSAPrivateKey | None:
    if not encrypted:
        return None
    # Checked when it was set, and Fernet refuses a token changed since.
    pem = keys.decrypt_with_secret(ctx.secret, encrypted)
    return keys.load_private_key(pem, is_checked=True)


def rotate_key(ctx: Context, name: str) -> SyncConfig:
    """Start signing with the next own private key; the current one is dropped."""
    with ctx.transaction() as tx:
        config = sync_configs.get(tx.conn, name)
        if not config.next_own_private_key:
            raise errors.Conflict(
                detail=f"sync config '{name}' has no next_own_private_key to rotate to: set one "
                "first, and add its public key (next_own_public_key) to the other side's "
                "remote_public_key list"
            )
        sync_configs.update(
            tx.conn,
            name,
            own_private_key=config.next_own_private_key,
            next_own_private_key=None,
            updated_at=ctx.now(),
        )
        tx.publish(Event.CONFIG, name)
        return sync_configs.get(tx.conn, name)


def remote_keys(config: SyncConfig) -> dict[str, rsa.RSAPublicKey]:
    """The other side's public keys by fingerprint."""
    loaded = (keys.load_public_key(pem) for pem in config.remote_public_keys)
    return {keys.fingerprint(key): key for key in loaded}


def _apply_changes(
    ctx: Context, config: SyncConfig, values: dict[str, Any], *, is_new: bool
) -> SyncConfig:
    unknown = set(values) - set(EDITABLE) - {"name"}
    if unknown:
        raise errors.LinkConfigInvalid(
            field=sorted(unknown)[0], detail=f"unknown field; the fields are {', '.join(EDITABLE)}"
        )
    changes: dict[str, Any] = {k: v for k, v in values.items() if k in EDITABLE}
    if changes.get("remote_url") == "":
        changes["remote_url"] = None
    if changes.get("remote_url"):
        check_remote_url(changes["remote_url"])
    if changes.get("ca_certificate"):
        check_ca_certificate(changes["ca_certificate"])
    elif "ca_certificate" in changes:
        changes["ca_certificate"] = None
    check_interval(changes.get("sync_interval_s"))
    if changes.get("proxy_url"):
        check_proxy_url(changes["proxy_url"])
        changes["proxy_url"] = keys.encrypt_with_secret(ctx.secret, changes["proxy_url"])
    elif "proxy_url" in changes:
        changes["proxy_url"] = None
    changes.update(_policy(changes))
    for field in ("own_private_key", "next_own_private_key"):
        if changes.get(field):
            key = keys.load_private_key(changes[field], field)
            changes[field] = keys.encrypt_with_secret(ctx.secret, keys.private_pem(key))
        elif field in changes:
            changes[field] = None
    if "remote_public_keys" in changes:
        changes["remote_public_keys"] = _public_keys(changes["remote_public_keys"])
    merged = replace(config, **changes, updated_at=ctx.now())
    role = changes.get("role") or (config.role if not is_new else "")
    if not role:
        role = sync_configs.CONTROLLING if merged.remote_url else sync_configs.CONTROLLED
    if role not in sync_configs.ROLES:
        raise errors.LinkConfigInvalid(
            field="role", detail=f"'{role}' is not a role; use 'controlling' or 'controlled'"
        )
    return replace(merged, role=role)


def _public_keys(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.LinkConfigInvalid(
            field="remote_public_key", detail="send the other side's public key as text"
        )
    loaded = [keys.load_public_key(text) for text in value if text.strip()]
    return [keys.public_pem(key) for key in loaded]


def describe(ctx: Context, config: SyncConfig, state: LinkState, depth: int) -> dict[str, Any]:
    """The API's view of a sync config: fields, fingerprints and this side's public key, never a private key."""
    own = own_private_key(ctx, config)
    upcoming = next_own_private_key(ctx, config)
    return {
        "name": config.name,
        "enabled": config.is_enabled,
        "remote_url": config.remote_url,
        "role": config.role,
        "ca_certificate": config.ca_certificate,
        "verify_ssl": config.verify_ssl,
        "send_all_executions": config.send_all_executions,
        "sync_interval": config.sync_interval_s,
        "proxy_url": shown_proxy_url(proxy_url(ctx, config)),
        "accepted_scripts": ANY_SCRIPT
        if config.accepted_scripts is None
        else list(config.accepted_scripts),
        "run_as": config.run_as,
        "effective_run_as": config.run_as or users.LINK_ACCOUNT,
        "allow_onward_remote": config.allow_onward_remote,
        "max_running": config.max_running,
        "own_public_key": keys.public_pem(own) if own else None,
        "own_key_fingerprint": keys.fingerprint(own.public_key()) if own else None,
        "next_own_public_key": keys.public_pem(upcoming) if upcoming else None,
        "next_own_key_fingerprint": keys.fingerprint(upcoming.public_key()) if upcoming else None,
        "remote_key_fingerprints": list(remote_keys(config)),
        "state": state.state,
        "notices": notices(config),
    }


LISTENER_INTERVAL_NOTICE = (
    "this side listens (no remote_url): sync_interval paces only the side that dials, so "
    "here it sets only how long a silent link still shows as connected; set the pace on the "
    "other workspace's sync config"
)


def notices(config: SyncConfig) -> list[str]:
    """Settings that are valid but do not do here what they may seem to, in words."""
    found = []
    if config.sync_interval_s is not None and not config.is_dialer:
        found.append(LISTENER_INTERVAL_NOTICE)
    if config.send_all_executions and config.role != sync_configs.CONTROLLING:
        found.append(
            "send_all_executions does nothing on a controlled sync config: the controlling "
            "side sends copies of its executions"
        )
    return found


def missing_keys(config: SyncConfig) -> str | None:
    """Words for the keys a sync config lacks to exchange anything, or None when it has them."""
    missing = []
    if not config.own_private_key:
        missing.append("no own_private_key to sign with (tether keygen makes one)")
    if not config.remote_public_keys:
        missing.append("no remote_public_key to verify the other side with (paste its public key)")
    if not missing:
        return None
    return f"sync config '{config.name}' cannot exchange anything: it has {' and '.join(missing)}"
