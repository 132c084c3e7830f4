"""User and token rows: accounts, their roles, and issued API tokens."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import token, user
from tether.store.statements import check_field_order, set_params


@dataclass(frozen=True)
class User:
    name: str
    role: str
    is_enabled: bool
    password_hash: str
    created_at: float


check_field_order(User, user)


@dataclass(frozen=True)
class Session:
    """An unrevoked token of an enabled user: who holds it, since when, last seen when."""

    user: User
    created_at: float
    last_used_at: float | None


# Statements built once; see tether.store.statements.
_BY_NAME = user.c.name == sa.bindparam("b_name")
_SELECT = sa.select(user).where(_BY_NAME)
_INSERT = user.insert()
_UPDATE = user.update().where(_BY_NAME)
_DELETE = user.delete().where(_BY_NAME)
_TOKENS_OF = token.c.user_name == sa.bindparam("b_user_name")
_DELETE_TOKENS = token.delete().where(_TOKENS_OF)
_INSERT_TOKEN = token.insert()
_SELECT_SESSION = (
    sa.select(user, token.c.created_at, token.c.last_used_at)
    .join(token, token.c.user_name == user.c.name)
    .where(
        token.c.digest == sa.bindparam("b_digest"), token.c.revoked_at.is_(None), user.c.is_enabled
    )
)
_REVOKE_TOKEN = token.update().where(token.c.digest == sa.bindparam("b_digest"))
_REVOKE_TOKENS_OF = token.update().where(_TOKENS_OF, token.c.revoked_at.is_(None))
_TOUCH_TOKEN = token.update().where(token.c.digest == sa.bindparam("b_digest"))
_DELETE_OLD_TOKENS_OF = token.delete().where(
    _TOKENS_OF, token.c.created_at < sa.bindparam("b_created_before")
)
# Locked in name order, so that two transactions changing admins never deadlock.
_LOCK_ENABLED_HOLDERS = (
    sa.select(user.c.name)
    .where(user.c.role == sa.bindparam("b_role"), user.c.is_enabled)
    .order_by(user.c.name)
    .with_for_update()
)


def get(conn: sa.Connection, name: str) -> User:
    """The user named ``name``."""
    found = find(conn, name)
    if found is None:
        raise errors.UserNotFound(name=name)
    return found


def find(conn: sa.Connection, name: str) -> User | None:
    """The user named ``name``, or None."""
    row = conn.execute(_SELECT, {"b_name": name}).first()
    return User(*row) if row else None


def list_all(conn: sa.Connection) -> list[User]:
    """All users by name."""
    return [User(*r) for r in conn.execute(sa.select(user).order_by(user.c.name))]


def count(conn: sa.Connection) -> int:
    """How many users exist."""
    return conn.execute(sa.select(sa.func.count()).select_from(user)).scalar_one()


def insert(conn: sa.Connection, item: User) -> None:
    """Add a user."""
    try:
        with conn.begin_nested():
            conn.execute(_INSERT, dict(item.__dict__))
    except sa.exc.IntegrityError as exc:
        if database.is_unique_violation(exc):
            raise errors.NameTaken(what="user", name=item.name) from exc
        raise


def update(conn: sa.Connection, name: str, **values: object) -> None:
    """Change columns of a user."""
    if conn.execute(_UPDATE, set_params(user, values, b_name=name)).rowcount == 0:
        raise errors.UserNotFound(name=name)


def delete(conn: sa.Connection, name: str) -> None:
    """Remove a user and their tokens."""
    conn.execute(_DELETE_TOKENS, {"b_user_name": name})
    if conn.execute(_DELETE, {"b_name": name}).rowcount == 0:
        raise errors.UserNotFound(name=name)


def insert_token(conn: sa.Connection, digest: str, user_name: str, now: float) -> None:
    """Record an issued token by its digest."""
    conn.execute(_INSERT_TOKEN, {"digest": digest, "user_name": user_name, "created_at": now})


def session_for_token(conn: sa.Connection, digest: str) -> Session | None:
    """The session of the unrevoked token with ``digest`` held by an enabled user, or None."""
    row = conn.execute(_SELECT_SESSION, {"b_digest": digest}).first()
    if row is None:
        return None
    *columns, created_at, last_used_at = row
    return Session(User(*columns), created_at, last_used_at)


def touch_token(conn: sa.Connection, digest: str, now: float) -> None:
    """Record that the token with ``digest`` was used at ``now``."""
    conn.execute(_TOUCH_TOKEN, {"b_digest": digest, "last_used_at": now})


def delete_tokens_created_before(conn: sa.Connection, user_name: str, moment: float) -> None:
    """Forget a user's tokens issued before ``moment`` (past their lifetime)."""
    conn.execute(_DELETE_OLD_TOKENS_OF, {"b_user_name": user_name, "b_created_before": moment})


def lock_enabled_holders_of(conn: sa.Connection, role: str) -> list[str]:
    """The names of the enabled users with ``role``, locked until the transaction ends."""
    return list(conn.execute(_LOCK_ENABLED_HOLDERS, {"b_role": role}).scalars())


def revoke_token(conn: sa.Connection, digest: str, now: float) -> None:
    """Revoke one token."""
    conn.execute(_REVOKE_TOKEN, {"b_digest": digest, "revoked_at": now})


def revoke_tokens_of(conn: sa.Connection, user_name: str, now: float) -> None:
    """Revoke every token of a user."""
    conn.execute(_REVOKE_TOKENS_OF, {"b_user_name": user_name, "revoked_at": now})
