"""REST routes for users, login and logout."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from tether import errors
from tether.actions import sessions, users
from tether.actions.context import Context
from tether.store.users import User
from tether.web import render
from tether.web.auth import bearer_token, context, current_user, log_in, require
from tether.web.contract import answers
from tether.web.routes.fields import Text, Unicode

router = APIRouter(tags=["users"])
ADMIN = (errors.Unauthenticated, errors.Forbidden)
Role = Literal["organization_admin", "workspace_admin", "user"]


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_name: Text = Field(min_length=1, max_length=100)
    password: Unicode = Field(min_length=1, max_length=1000)


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.@\-]{1,100}$")
    password: Unicode = Field(min_length=8, max_length=1000)
    role: Role = "user"


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    is_enabled: StrictBool | None = None
    password: Unicode | None = Field(default=None, min_length=8, max_length=1000)


@router.post("/auth/login", responses=answers(errors.BadCredentials, errors.TooManyLogins))
async def login(body: Login, request: Request) -> dict[str, Any]:
    """Check the password (throttled: 429 with Retry-After) and issue a token."""
    token, user = await log_in(request, body.user_name, body.password)
    return {"token": token, "user": render.user(user)}


@router.post("/auth/logout", status_code=204, responses=answers(errors.Unauthenticated))
def logout(request: Request, _user: User = Depends(current_user)) -> None:
    sign_ins: sessions.SignIns = request.app.state.sign_ins
    sign_ins.logout(bearer_token(request))


@router.get("/auth/me", responses=answers(errors.Unauthenticated))
def me(user: User = Depends(current_user)) -> dict[str, Any]:
    return render.user(user)


@router.get("/user", responses=answers(*ADMIN))
def list_users(
    _user: User = Depends(require("manage users")), ctx: Context = Depends(context)
) -> list[dict[str, Any]]:
    return [render.user(u) for u in users.list_all(ctx)]


@router.post("/user", status_code=201, responses=answers(*ADMIN, errors.NameTaken))
def create_user(
    body: UserIn, actor: User = Depends(require("manage users")), ctx: Context = Depends(context)
) -> dict[str, Any]:
    return render.user(users.create(ctx, actor, body.name, body.password, body.role))


@router.patch(
    "/user/{name}",
    responses=answers(*ADMIN, errors.UserNotFound, errors.LastAdmin, errors.Conflict),
)
def change_user(
    name: Text,
    body: UserChange,
    actor: User = Depends(require("manage users")),
    ctx: Context = Depends(context),
) -> dict[str, Any]:
    changed = users.change(
        ctx, actor, name, role=body.role, is_enabled=body.is_enabled, password=body.password
    )
    return render.user(changed)


@router.delete(
    "/user/{name}",
    status_code=204,
    responses=answers(*ADMIN, errors.UserNotFound, errors.LastAdmin, errors.Conflict),
)
def delete_user(
    name: Text, actor: User = Depends(require("manage users")), ctx: Context = Depends(context)
) -> None:
    users.delete(ctx, actor, name)
