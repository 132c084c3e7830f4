"""Who is asking: the bearer token of a request, resolved to a user with a role."""

from __future__ import annotations

import asyncio
from typing import cast

from fastapi import Depends, Request

from tether import errors
from tether.actions import sessions, users
from tether.actions.context import Context
from tether.store.users import User


def workspace_context(request: Request) -> Context:
    """The workspace's use-case context, built by create_app."""
    return cast(Context, request.app.state.ctx)


async def context(request: Request) -> Context:
    """``workspace_context`` as a dependency: async, so that FastAPI calls it on the event
    loop rather than handing it to a worker thread (a hop for every request)."""
    return workspace_context(request)


def client_address(request: Request) -> str:
    """The client's address (the proxy's forwarded one behind a trusted proxy), for throttling."""
    return request.client.host if request.client else ""


async def log_in(request: Request, name: str, password: str) -> tuple[str, User]:
    """Check a password and issue a token on the workspace's login threads (see create_app)."""
    sign_ins: sessions.SignIns = request.app.state.sign_ins
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        request.app.state.login_threads, sign_ins.login, name, password, client_address(request)
    )


def bearer_token(request: Request) -> str:
    """The token of the request's Authorization header."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthenticated()
    return token.strip()


async def current_user(request: Request) -> User:
    """The user whose token the request carries (any role).

    Async, like the dependencies below: a known token is answered on the event loop, and
    only an unknown one costs a worker thread.
    """
    sign_ins: sessions.SignIns = request.app.state.sign_ins
    token = bearer_token(request)
    user = sign_ins.kept(token)
    if user is None:
        user = await asyncio.to_thread(sign_ins.authenticate, token)
    request.state.user = user
    return user


def require(permission: str):  # type: ignore[no-untyped-def]
    """A dependency that answers 403 unless the user's role holds ``permission``."""

    async def check(user: User = Depends(current_user)) -> User:
        users.authorize(user, permission)
        return user

    return check
