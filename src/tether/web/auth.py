"""Who is asking: the bearer token of a request, resolved to a user with a role."""

from __future__ import annotations

from fastapi import Depends, Request

from tether import errors
from tether.actions import users
from tether.actions.context import Context
from tether.store.users import User


def context(request: Request) -> Context:
    """The workspace's use-case context, built by create_app."""
    return request.app.state.ctx


def bearer_token(request: Request) -> str:
    """The token of the request's Authorization header."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthenticated()
    return token.strip()


def current_user(request: Request) -> User:
    """The user whose token the request carries (any role)."""
    user = users.authenticate(context(request), bearer_token(request))
    request.state.user = user
    return user


def require(permission: str):  # type: ignore[no-untyped-def]
    """A dependency that answers 403 unless the user's role holds ``permission``."""

    def check(user: User = Depends(current_user)) -> User:
        users.authorize(user, permission)
        return user

    return check
