"""Users, roles and tokens: who may do what, login, and the first organization admin."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from tether import errors
from tether.actions import events
from tether.actions.context import Context
from tether.store import users
from tether.store.users import User

ORGANIZATION_ADMIN = "organization_admin"
WORKSPACE_ADMIN = "workspace_admin"
USER = "user"
ROLES = (ORGANIZATION_ADMIN, WORKSPACE_ADMIN, USER)

# permission -> roles holding it
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "use the workspace": ROLES,
    "manage users": (ORGANIZATION_ADMIN, WORKSPACE_ADMIN),
    "manage organization admins": (ORGANIZATION_ADMIN,),
    "manage sync configs": (ORGANIZATION_ADMIN,),
}

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}

# The built-in account whose rights bound executions received over a link whose run_as is
# empty. Its password hash matches no password, so nobody logs in as it.
LINK_ACCOUNT = "tether-link"
_NO_PASSWORD = "!"


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``, self-describing."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def is_password_correct(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        computed = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
    """``check_owner`` with each owner's record kept until a user changes (events.USERS).

    Every flow_api request is checked: reading the user from SQLite cost each one 110 us.
    Users change only through this module, which announces every change after its commit.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._users: events.KeptUntilChanged[User | None] = events.KeptUntilChanged(
            ctx.events, events.USERS
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


def login(ctx: Context, name: str, password: str) -> tuple[str, User]:
    """Check a user's password and issue a new token."""
    with ctx.transaction() as tx:
        found = users.find(tx.conn, name)
        if found is None or not found.is_enabled:
            # Hash anyway, so that timing does not tell which user names exist.
            is_password_correct(password, _dummy_hash())
            raise errors.BadCredentials()
        if not is_password_correct(password, found.password_hash):
            raise errors.BadCredentials()
        token = secrets.token_urlsafe(32)
        users.insert_token(tx.conn, token_digest(token), found.name, ctx.now())
        return token, found


def authenticate(ctx: Context, token: str) -> User:
    """The user holding ``token``."""
    with ctx.db.read() as conn:
        found = users.user_for_token(conn, token_digest(token))
    if found is None:
        raise errors.Unauthenticated()
    return found


class SignIns:
    """``authenticate`` with its answers kept until a user or a token changes (events.USERS).

    Every API request carries a token: looking it up in the store cost each request a
    worker-thread hop. Users and tokens change only through this module, which announces
    every change after its commit.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._users: events.KeptUntilChanged[User] = events.KeptUntilChanged(
            ctx.events, events.USERS
        )

    def kept(self, token: str) -> User | None:
        """The user holding ``token`` if known without reading the store, else None."""
        return self._users.kept(token_digest(token))[1]

    def authenticate(self, token: str) -> User:
        """The user holding ``token``, read from the store; blocking."""
        return self._users.read(token_digest(token), lambda: authenticate(self._ctx, token))


def logout(ctx: Context, token: str) -> None:
    """Revoke ``token``."""
    with ctx.transaction() as tx:
        users.revoke_token(tx.conn, token_digest(token), ctx.now())
        tx.publish(events.USERS)


def create(ctx: Context, actor: User, name: str, password: str, role: str) -> User:
    """Add a user with ``role``."""
    _check_role_change(actor, role)
    item = User(
        name=name,
        role=role,
        is_enabled=True,
        password_hash=hash_password(password),
        created_at=ctx.now(),
    )
    with ctx.transaction() as tx:
        users.insert(tx.conn, item)
        tx.publish(events.USERS)  # an execution's owner may have been missing until now
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
    """Change a user's role, enabled flag or password."""
    with ctx.transaction() as tx:
        target = users.get(tx.conn, name)
        _check_role_change(actor, target.role)
        values: dict[str, object] = {}
        if role is not None:
            _check_role_change(actor, role)
            values["role"] = role
        if is_enabled is not None:
            values["is_enabled"] = is_enabled
        if password is not None:
            values["password_hash"] = hash_password(password)
        if values:
            users.update(tx.conn, name, **values)
        if is_enabled is False or password is not None:
            users.revoke_tokens_of(tx.conn, name, ctx.now())
        tx.publish(events.USERS)
        return users.get(tx.conn, name)


def delete(ctx: Context, actor: User, name: str) -> None:
    """Remove a user."""
    if name == actor.name:
        raise errors.Conflict(detail="you cannot delete yourself: ask another admin")
    if name == LINK_ACCOUNT:
        raise errors.Conflict(
            detail=f"'{LINK_ACCOUNT}' is the built-in account of links without a run_as: "
            "disable it instead, which refuses every request of the executions it owns"
        )
    with ctx.transaction() as tx:
        _check_role_change(actor, users.get(tx.conn, name).role)
        users.delete(tx.conn, name)
        tx.publish(events.USERS)


def list_all(ctx: Context) -> list[User]:
    """All users."""
    with ctx.db.read() as conn:
        return users.list_all(conn)


def ensure_admin(ctx: Context, password: str | None) -> str | None:
    """On first start create the organization admin 'admin'; return a generated password."""
    with ctx.transaction() as tx:
        if users.count(tx.conn):
            return None
        generated = None if password else secrets.token_urlsafe(12)
        users.insert(
            tx.conn,
            User(
                name="admin",
                role=ORGANIZATION_ADMIN,
                is_enabled=True,
                password_hash=hash_password(password or generated or ""),
                created_at=ctx.now(),
            ),
        )
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
        tx.publish(events.USERS)


def _check_role_change(actor: User, role: str) -> None:
    if role == ORGANIZATION_ADMIN:
        authorize(actor, "manage organization admins")


@functools.cache
def _dummy_hash() -> str:
    """A hash to check refused logins against; made on first need (scrypt costs a start 70 ms)."""
    return hash_password(secrets.token_hex(8))
