"""User and token rows: accounts, their roles, and issued API tokens."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import token, user


@dataclass(frozen=True)
class User:
    name: str
    role: str
    is_enabled: bool
    password_hash: str
    created_at: float


def get(conn: sa.Connection, name: str) -> User:
    """The user named ``name``."""
    row = conn.execute(sa.select(user).where(user.c.name == name)).first()
    if row is None:
        raise errors.UserNotFound(name=name)
    return User(**row._mapping)


def find(conn: sa.Connection, name: str) -> User | None:
    """The user named ``name``, or None."""
    row = conn.execute(sa.select(user).where(user.c.name == name)).first()
    return User(**row._mapping) if row else None


def list_all(conn: sa.Connection) -> list[User]:
    """All users by name."""
    return [User(**r._mapping) for r in conn.execute(sa.select(user).order_by(user.c.name))]


def count(conn: sa.Connection) -> int:
    """How many users exist."""
    return conn.execute(sa.select(sa.func.count()).select_from(user)).scalar_one()


def insert(conn: sa.Connection, item: User) -> None:
    """Add a user."""
    try:
        with conn.begin_nested():
            conn.execute(user.insert().values(**item.__dict__))
    except sa.exc.IntegrityError as exc:
        if database.is_unique_violation(exc):
            raise errors.NameTaken(what="user", name=item.name) from exc
        raise


def update(conn: sa.Connection, name: str, **values: object) -> None:
    """Change columns of a user."""
    if conn.execute(user.update().where(user.c.name == name).values(**values)).rowcount == 0:
        raise errors.UserNotFound(name=name)


def delete(conn: sa.Connection, name: str) -> None:
    """Remove a user and their tokens."""
    conn.execute(token.delete().where(token.c.user_name == name))
    if conn.execute(user.delete().where(user.c.name == name)).rowcount == 0:
        raise errors.UserNotFound(name=name)


def insert_token(conn: sa.Connection, digest: str, user_name: str, now: float) -> None:
    """Record an issued token by its digest."""
    conn.execute(token.insert().values(digest=digest, user_name=user_name, created_at=now))


def user_for_token(conn: sa.Connection, digest: str) -> User | None:
    """The enabled user holding the unrevoked token with ``digest``, or None."""
    row = conn.execute(
        sa.select(user)
        .join(token, token.c.user_name == user.c.name)
        .where(token.c.digest == digest, token.c.revoked_at.is_(None), user.c.is_enabled)
    ).first()
    return User(**row._mapping) if row else None


def revoke_token(conn: sa.Connection, digest: str, now: float) -> None:
    """Revoke one token."""
    conn.execute(token.update().where(token.c.digest == digest).values(revoked_at=now))


def revoke_tokens_of(conn: sa.Connection, user_name: str, now: float) -> None:
    """Revoke every token of a user."""
    conn.execute(
        token.update()
        .where(token.c.user_name == user_name, token.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
