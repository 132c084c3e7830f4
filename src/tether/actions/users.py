"""Users and roles: who may do what, the first organization admin, and never the last one's loss.

Passwords are hashed before a transaction opens: a hash under the store's write lock would
stall every other write for its quarter second.
"""

from __future__ import annotations

import logging
import secrets

from tether import errors
from tether.actions import events, passwords
from tether.actions.context import Context
from tether.statuses import Event
from tether.store import database, users
from tether.store.users import User

ORGANIZATION_ADMIN = "organization_admin"
WORKSPACE_ADMIN = "workspace_admin"
USER = "user"
ROLES = (ORGANIZATION_ADMIN, WORKSPACE_ADMIN, USER)

log = logging.getLogger(__name__)

# permission -> roles holding it
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "use the workspace": ROLES,
    "manage users": (ORGANIZATION_ADMIN, WORKSPACE_ADMIN),
    "manage organization admins": (ORGANIZATION_ADMIN,),
    "manage sync configs": (ORGANIZATION_ADMIN,),
    "see processes": (ORGANIZATION_ADMIN, WORKSPACE_ADMIN),
    "manage connectors": (ORGANIZATION_ADMIN, WORKSPACE_ADMIN),
}

# The built-in account whose rights bound executions received over a link whose run_as is
# empty. Its password hash matches no password, so nobody logs in as it.
LINK_ACCOUNT = "tether-link"
_NO_PASSWORD = "!"


def authorize(user: User, permission: str) -> None:
    """Refuse with 403 unless ``user``'s role holds ``permission``."""
    if user.role not in PERMISSIONS[permission]:
        raise errors.Forbidden(role=user.role, action=permission)


def check_owner(owner: str | None, found: User | None, permission: str) -> None:
    """Refuse unless the owner of an execution (``found``, the user named ``owner``) exists,
    is enabled and holds ``permission``."""
    if owner is None:
        detail = "the execution has no owner (it is a mirror)"
    elif found is None:
        detail = "that user no longer exists; start the execution again as an existing user"
    elif not found.is_enabled:
        detail = "that user is disabled; an admin can enable it again"
    elif found.role not in PERMISSIONS[permission]:
        detail = f"role '{found.role}' does not allow it"
    else:
        return
    raise errors.OwnerForbidden(owner=owner or "", action=permission, detail=detail)


class OwnerRights:
    """``check_owner`` with each owner's record kept until a user changes (Event.USERS).

    Every flow_api request is checked: reading the user from SQLite cost each one 110 us.
    Users change only through this module, which announces every change after its commit.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._users: events.KeptUntilChanged[User | None] = events.KeptUntilChanged(
            ctx.events, Event.USERS
        )

    def authorize(self, owner: str | None, permission: str) -> None:
        """Refuse unless ``owner`` may act with ``permission`` now; blocking."""
        found = None
        if owner is not None:
            is_kept, found = self._users.kept(owner)
            if not is_kept:
                found = self._users.read(owner, lambda: self._find(owner))
        check_owner(owner, found, permission)

    def _find(self, name: str) -> User | None:
        with self._ctx.db.read() as conn:
            return users.find(conn, name)


def create(ctx: Context, actor: User, name: str, password: str, role: str) -> User:
    """Add a user with ``role``."""
    _check_role_change(actor, role)
    item = User(
        name=name,
        role=role,
        is_enabled=True,
        password_hash=passwords.hash_password(password),
        created_at=ctx.now(),
    )
    with ctx.transaction() as tx:
        users.insert(tx.conn, item)
        tx.publish(Event.USERS)  # an execution's owner may have been missing until now
    return item


def change(
    ctx: Context,
    actor: User,
    name: str,
    *,
    role: str | None = None,
    is_enabled: bool | None = None,
    password: str | None = None,
) -> User:
    """Change a user's role, enabled flag or password; never the last enabled admin away."""
    values: dict[str, object] = {}
    if role is not None:
        _check_role_change(actor, role)
        values["role"] = role
    if is_enabled is not None:
        values["is_enabled"] = is_enabled
    if password is not None:
        values["password_hash"] = passwords.hash_password(password)
    with ctx.transaction() as tx:
        target = users.get(tx.conn, name)
        _check_role_change(actor, target.role)
        if role not in (None, ORGANIZATION_ADMIN) or is_enabled is False:
            _keep_an_admin_besides(tx.conn, target)
        if values:
            users.update(tx.conn, name, **values)
        if is_enabled is False or password is not None:
            users.revoke_tokens_of(tx.conn, name, ctx.now())
        tx.publish(Event.USERS)
        return users.get(tx.conn, name)


def delete(ctx: Context, actor: User, name: str) -> None:
    """Remove a user; never the last enabled admin."""
    if name == actor.name:
        raise errors.Conflict(detail="you cannot delete yourself: ask another admin")
    if name == LINK_ACCOUNT:
        raise errors.Conflict(
            detail=f"'{LINK_ACCOUNT}' is the built-in account of links without a run_as: "
            "disable it instead, which refuses every request of the executions it owns"
        )
    with ctx.transaction() as tx:
        target = users.get(tx.conn, name)
        _check_role_change(actor, target.role)
        _keep_an_admin_besides(tx.conn, target)
        users.delete(tx.conn, name)
        tx.publish(Event.USERS)


def reset_password(ctx: Context, name: str, password: str) -> User:
    """Set a user's password without an actor (the offline command) and end their sessions."""
    password_hash = passwords.hash_password(password)
    with ctx.transaction() as tx:
        users.update(tx.conn, name, password_hash=password_hash)
        users.revoke_tokens_of(tx.conn, name, ctx.now())
        tx.publish(Event.USERS)
        return users.get(tx.conn, name)


def list_all(ctx: Context) -> list[User]:
    """All users."""
    with ctx.db.read() as conn:
        return users.list_all(conn)


def ensure_admin(ctx: Context, password: str | None) -> str | None:
    """On first start create the organization admin 'admin'; return a generated password."""
    with ctx.db.read() as conn:
        is_new_store = users.count(conn) == 0
    if not is_new_store:
        if password:
            log.warning(
                "TETHER_ADMIN_PASSWORD is ignored: this store already has users. To set a "
                "password, stop the workspace and run `tether admin reset-password admin` "
                "with its --data-dir or --database-url"
            )
        return None
    generated = None if password else secrets.token_urlsafe(12)
    admin = User(
        name="admin",
        role=ORGANIZATION_ADMIN,
        is_enabled=True,
        password_hash=passwords.hash_password(password or generated or ""),
        created_at=ctx.now(),
    )
    with ctx.transaction() as tx:
        if users.count(tx.conn):  # another server of this workspace was first
            return None
        users.insert(tx.conn, admin)
        return generated


def ensure_link_account(ctx: Context) -> None:
    """Create the built-in account LINK_ACCOUNT (role user, no login) when it is missing."""
    with ctx.transaction() as tx:
        if users.find(tx.conn, LINK_ACCOUNT) is not None:
            return
        account = User(
            name=LINK_ACCOUNT,
            role=USER,
            is_enabled=True,
            password_hash=_NO_PASSWORD,
            created_at=ctx.now(),
        )
        users.insert(tx.conn, account)
        tx.publish(Event.USERS)


def _keep_an_admin_besides(conn: database.Connection, target: User) -> None:
    """Refuse to remove ``target`` from the enabled organization admins if it is the last.

    The enabled admins stay locked until the transaction ends, so that two admins demoting
    each other at once cannot both succeed.
    """
    if target.role != ORGANIZATION_ADMIN or not target.is_enabled:
        return
    if users.lock_enabled_holders_of(conn, ORGANIZATION_ADMIN) == [target.name]:
        raise errors.LastAdmin(name=target.name)


def _check_role_change(actor: User, role: str) -> None:
    if role == ORGANIZATION_ADMIN:
        authorize(actor, "manage organization admins")
