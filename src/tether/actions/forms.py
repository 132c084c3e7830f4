"""The forms of messages: checking the form a script sends and the answer a person sends.

Pure (no I/O). The shape is Cloudomation's: ``{'type': 'object', 'properties': {key: {'element':
..., 'label': ..., 'order': ..., 'default': ..., 'required': ...}}, 'required': [key, ...]}``.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from tether import errors, limits

STRING, NUMBER, BOOLEAN = "string", "number", "boolean"
TIME, DATE, DATETIME = "time", "date", "datetime"
MARKDOWN, SUBMIT = "markdown", "submit"
INPUTS = (STRING, NUMBER, BOOLEAN, TIME, DATE, DATETIME)
ELEMENTS = (*INPUTS, MARKDOWN, SUBMIT)
# Other names Cloudomation's forms use for the same elements.
ALIASES = {
    "string-field": STRING,
    "text": STRING,
    "number-field": NUMBER,
    "toggle": BOOLEAN,
    "checkbox": BOOLEAN,
    "time-field": TIME,
    "date-field": DATE,
    "date-time": DATETIME,
    "date-time-field": DATETIME,
    "markdown-field": MARKDOWN,
    "submit-button": SUBMIT,
}
MESSAGE_TYPES = ("INFO", "WARN", "ERROR", "POPUP")
_PROPERTY_KEYS = frozenset(
    {"element", "label", "order", "default", "required", "description", "type", "example"}
)


def _invalid(detail: str) -> errors.FormInvalid:
    return errors.FormInvalid(detail=detail)


def message_type(value: Any) -> str:
    """``value`` as one of INFO, WARN, ERROR, POPUP (any case); INFO when None."""
    if value is None:
        return "INFO"
    if not isinstance(value, str) or value.upper() not in MESSAGE_TYPES:
        raise _invalid(f"message_type must be one of {', '.join(MESSAGE_TYPES)}, not {value!r}")
    return value.upper()


def subject(value: Any) -> str:
    """A message's subject: a non-empty str of at most MAX_MESSAGE_SUBJECT_CHARS."""
    if not isinstance(value, str) or not value.strip():
        raise _invalid("subject must be a non-empty str")
    _check_text(value, "subject")
    if len(value) > limits.MAX_MESSAGE_SUBJECT_CHARS:
        raise _invalid(
            f"subject has {len(value)} characters, at most {limits.MAX_MESSAGE_SUBJECT_CHARS}"
        )
    return value


def body_of(body: Any = None, message: Any = None, request: Any = None) -> dict[str, Any]:
    """The checked form of a message from Cloudomation's ``body``, ``message`` (markdown and
    an OK button) or ``request`` (one string field keyed ``string`` and an OK button)."""
    given = [n for n, v in (("body", body), ("message", message), ("request", request)) if v]
    if len(given) > 1:
        raise _invalid(f"give one of body, message and request, not {' and '.join(given)}")
    if message is not None and not isinstance(message, str):
        raise _invalid("message must be a str (markdown)")
    if request is not None and not isinstance(request, str):
        raise _invalid("request must be a str (the question)")
    if request:
        body = {
            "properties": {
                "string": {"element": STRING, "label": request, "order": 1, "required": True},
                "ok": {"element": SUBMIT, "label": "OK", "order": 2},
            }
        }
    elif message or body is None:
        body = {
            "properties": {
                "message": {"element": MARKDOWN, "description": message or "", "order": 1},
                "ok": {"element": SUBMIT, "label": "OK", "order": 2},
            }
        }
    return check_form(body)


def check_form(body: Any) -> dict[str, Any]:
    """The form in its stored shape; raises FormInvalid naming what is wrong."""
    if not isinstance(body, dict):
        raise _invalid(f"body must be a dict, not {type(body).__name__}")
    unknown = sorted(set(body) - {"type", "properties", "required", "title", "description"})
    if unknown:
        raise _invalid(f"body has no key {unknown[0]!r}; it has type, properties and required")
    if body.get("type", "object") != "object":
        raise _invalid(f"body type must be 'object', not {body.get('type')!r}")
    properties = body.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise _invalid("body needs 'properties': a dict of the form's fields by key")
    if len(properties) > limits.MAX_FORM_FIELDS:
        raise _invalid(f"the form has {len(properties)} fields, at most {limits.MAX_FORM_FIELDS}")
    required = body.get("required", [])
    if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
        raise _invalid("required must be a list of field keys")
    missing = [k for k in required if k not in properties]
    if missing:
        raise _invalid(f"required names {missing[0]!r}, which is not a field of the form")
    checked = {
        key: _check_property(key, prop, position, key in required)
        for position, (key, prop) in enumerate(properties.items())
    }
    # A stable sort: fields of equal order keep the order the script wrote them in.
    ordered = dict(sorted(checked.items(), key=lambda kv: kv[1]["order"]))
    form = {"type": "object", "properties": ordered}
    for key in ("title", "description"):
        if isinstance(body.get(key), str):
            form[key] = body[key]
    _check_strings(form)
    _check_size(form)
    return form


def _check_size(form: dict[str, Any]) -> None:
    size = limits.json_bytes(form)
    if size > limits.MAX_MESSAGE_BODY_BYTES:
        raise _invalid(
            f"the form is {size} bytes of JSON, at most {limits.MAX_MESSAGE_BODY_BYTES}: "
            "keep long text in a file and name it in the message"
        )


def _check_text(value: str, what: str) -> None:
    """Refuse text that not every store can hold: NUL, or half a UTF-16 surrogate pair."""
    if "\x00" in value:
        raise _invalid(f"{what} must not hold the NUL character (\\u0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid(f"{what} must not hold a lone surrogate (\\ud800-\\udfff)") from None


def _check_strings(form: dict[str, Any]) -> None:
    for key, prop in form["properties"].items():
        _check_text(key, "a field key")
        for name, value in prop.items():
            if isinstance(value, str):
                _check_text(value, f"field {key!r}: {name}")
    for name in ("title", "description"):
        if name in form:
            _check_text(form[name], name)


def _element_of(key: Any, prop: Any) -> str:
    """The element of field ``key`` by its own name, once the field's shape is checked."""
    if not isinstance(key, str) or not key or len(key) > limits.MAX_FORM_KEY_CHARS:
        raise _invalid(f"a field key must be a str of 1 to {limits.MAX_FORM_KEY_CHARS} characters")
    if not isinstance(prop, dict):
        raise _invalid(f"field {key!r} must be a dict with at least 'element'")
    unknown = sorted(set(prop) - _PROPERTY_KEYS)
    if unknown:
        raise _invalid(
            f"field {key!r} has no key {unknown[0]!r}; keys are {', '.join(sorted(_PROPERTY_KEYS))}"
        )
    element = prop.get("element")
    element = ALIASES.get(element, element) if isinstance(element, str) else element
    if element not in ELEMENTS:
        raise _invalid(
            f"field {key!r}: element must be one of {', '.join(ELEMENTS)}, not {prop.get('element')!r}"
        )
    return str(element)


def _check_property(key: Any, prop: Any, position: int, is_listed: bool) -> dict[str, Any]:
    element = _element_of(key, prop)
    order = prop.get("order", position + 1)
    if isinstance(order, bool) or not isinstance(order, int | float) or not math.isfinite(order):
        raise _invalid(f"field {key!r}: order must be a number")
    label = prop.get("label", key if element != MARKDOWN else "")
    if not isinstance(label, str):
        raise _invalid(f"field {key!r}: label must be a str")
    is_required = prop.get("required", is_listed)
    if not isinstance(is_required, bool):
        raise _invalid(f"field {key!r}: required must be True or False")
    checked: dict[str, Any] = {"element": element, "label": label, "order": order}
    if element in INPUTS:
        checked["required"] = is_required or is_listed
    elif is_required or is_listed:
        raise _invalid(f"field {key!r}: a {element} element cannot be required")
    description = prop.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise _invalid(f"field {key!r}: description must be a str")
        checked["description"] = description
    if "default" in prop and prop["default"] is not None:
        if element not in INPUTS:
            raise _invalid(f"field {key!r}: a {element} element has no default")
        checked["default"] = _check_value(
            element, prop["default"], lambda d: _invalid(f"field {key!r}: default {d}")
        )
    return checked


def check_answer(message_id: str, form: dict[str, Any], response: Any) -> dict[str, Any]:
    """The values of an answer to ``form``, defaults filled in and the pressed button True;
    raises AnswerInvalid naming the first field that does not fit."""

    def invalid(detail: str) -> errors.AnswerInvalid:
        return errors.AnswerInvalid(id=message_id, detail=detail)

    if not isinstance(response, dict):
        raise invalid(
            f"the answer must be a JSON object of the form's fields, not {type(response).__name__}"
        )
    properties: dict[str, dict[str, Any]] = form["properties"]
    unknown = [k for k in response if k not in properties]
    if unknown:
        raise invalid(
            f"the form has no field {unknown[0]!r}; its fields are {', '.join(properties)}"
        )
    values: dict[str, Any] = {}
    for key, prop in properties.items():
        element = prop["element"]
        if element == MARKDOWN:
            if key in response:
                raise invalid(f"{key!r} is text to read, not a field to answer")
            continue
        if element == SUBMIT:
            continue
        value = response.get(key)
        if value is None or value == "":
            value = prop.get("default", False if element == BOOLEAN else None)
        if value is None:
            if prop.get("required"):
                raise invalid(f"{prop['label'] or key!r} ({key}) is required")
            values[key] = None
            continue
        values[key] = _check_value(element, value, lambda d, k=key: invalid(f"{k!r} {d}"))
    values.update(_pressed(properties, response, invalid))
    return values


def _pressed(
    properties: dict[str, dict[str, Any]], response: dict[str, Any], invalid: Any
) -> dict[str, bool]:
    """Each submit button's value: True for the one pressed."""
    buttons = [k for k, p in properties.items() if p["element"] == SUBMIT]
    for key in buttons:
        if key in response and not isinstance(response[key], bool):
            raise invalid(f"submit button {key!r} takes true or false")
    pressed = [k for k in buttons if response.get(k) is True]
    if len(pressed) > 1:
        raise invalid(f"press one submit button, not {' and '.join(pressed)}")
    if not pressed and len(buttons) > 1:
        raise invalid(f"press one of the submit buttons {', '.join(buttons)}")
    if not pressed and buttons:
        pressed = buttons
    return {k: k in pressed for k in buttons}


def _check_value(element: str, value: Any, invalid: Any) -> Any:
    if element == STRING:
        if not isinstance(value, str):
            raise invalid(f"must be text, not {type(value).__name__}")
        if len(value) > limits.MAX_ANSWER_TEXT_CHARS:
            raise invalid(f"has {len(value)} characters, at most {limits.MAX_ANSWER_TEXT_CHARS}")
        return value
    if element == NUMBER:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise invalid(f"must be a number, not {value!r}")
        return value
    if element == BOOLEAN:
        if not isinstance(value, bool):
            raise invalid(f"must be true or false, not {value!r}")
        return value
    if not isinstance(value, str):
        raise invalid(f"must be a {element} written as text, not {type(value).__name__}")
    try:
        if element == TIME:
            return datetime.time.fromisoformat(value).isoformat(
                timespec="minutes" if len(value) <= 5 else "seconds"
            )
        if element == DATETIME:
            return datetime.datetime.fromisoformat(value).isoformat(
                timespec="minutes" if len(value) <= 16 else "seconds"
            )
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        shapes = {TIME: "HH:MM or HH:MM:SS", DATETIME: "YYYY-MM-DDTHH:MM", DATE: "YYYY-MM-DD"}
        shape = shapes[element]
        raise invalid(f"must be a {element} written {shape}, not {value!r}") from None
