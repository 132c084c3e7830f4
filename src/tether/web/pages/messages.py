"""The messages page: the open forms of executions, each rendered and answered in the page.

The same role rule and use case as the API's /message routes: whoever may use the workspace
sees and answers its messages. A form's fields arrive as ``field:KEY``; the pressed button as
``submit=KEY``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from tether import errors
from tether.actions import forms, messages
from tether.actions.context import Context
from tether.store.messages import Message
from tether.store.users import User
from tether.web.auth import context
from tether.web.pages import common
from tether.web.pages.common import Form

router = APIRouter(
    prefix="/ui/messages",
    route_class=common.PageRoute,
    dependencies=[Depends(common.require_page("use the workspace"))],
)
FIELD_PREFIX = "field:"
NEXT_PAGE = re.compile(r"/ui/executions/[0-9a-f-]{36}")
ANSWERED_SHOWN = 20


def _page(
    request: Request,
    ctx: Context,
    status_code: int = 200,
    problems: dict[str, str] | None = None,
    entered: dict[str, Form] | None = None,
) -> Response:
    return common.render(
        request,
        "messages/list.html",
        status_code=status_code,
        open_messages=messages.list_filtered(ctx, status="open", limit=1000),
        answered=messages.list_filtered(ctx, status="answered", limit=ANSWERED_SHOWN),
        problems=problems or {},
        entered=entered or {},
        is_answered=request.query_params.get("answered"),
    )


@router.get("")
def list_messages(request: Request, ctx: Context = Depends(context)) -> Response:
    return _page(request, ctx)


@router.post("/{message_id}")
def answer_message(
    request: Request,
    message_id: str,
    form: Form = Depends(common.read_form),
    user: User = Depends(common.page_user),
    ctx: Context = Depends(context),
) -> Response:
    item = messages.get(ctx, message_id)
    try:
        messages.respond(ctx, message_id, answer_of(item, form), user=user.name)
    except errors.AnswerInvalid as exc:
        return _page(request, ctx, 400, {item.id: exc.message}, {item.id: form})
    return common.redirect(f"{_back_to(form)}?answered={message_id}")


def _back_to(form: Form) -> str:
    """Where the answer came from: an execution's page, else the messages page (only pages of
    this site: never a redirect elsewhere)."""
    target = form.get("next", "")
    if NEXT_PAGE.fullmatch(target):
        return target
    return "/ui/messages"


def answer_of(item: Message, form: Form) -> dict[str, Any]:
    """The answer a browser's form post stands for, typed as the message's form says."""
    answer: dict[str, Any] = {}
    for key, prop in item.body["properties"].items():
        element = prop["element"]
        raw = form.get(FIELD_PREFIX + key)
        if element == forms.BOOLEAN:
            answer[key] = raw is not None
        elif element == forms.SUBMIT:
            answer[key] = form.get("submit") == key
        elif raw not in (None, ""):
            answer[key] = _number(raw) if element == forms.NUMBER else raw
    return answer


def _number(text: str) -> Any:
    """``text`` as an int or a float; as it is when it is neither (the check then says so)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text
