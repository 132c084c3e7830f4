"""The forms of messages: what a script may ask, and which answers fit."""

from __future__ import annotations

from typing import Any

import pytest

from tether import errors, limits
from tether.actions import forms

FORM = {
    "type": "object",
    "properties": {
        "submit": {"element": "submit", "label": "OK", "order": 9},
        "intro": {"element": "markdown", "description": "# Deploy?", "order": 1},
        "name": {"element": "string", "label": "Name", "order": 2},
        "count": {"element": "number", "label": "How many", "order": 3, "default": 2},
        "sure": {"element": "toggle", "label": "Sure", "order": 4},
        "at": {"element": "time", "label": "When", "order": 5},
    },
    "required": ["name"],
}


def checked() -> dict[str, Any]:
    return forms.check_form(FORM)


def test_a_cloudomation_form_is_kept_in_its_order_with_aliases_resolved() -> None:
    form = checked()
    assert list(form["properties"]) == ["intro", "name", "count", "sure", "at", "submit"]
    assert form["properties"]["sure"]["element"] == "boolean"
    assert form["properties"]["name"]["required"] is True
    assert form["properties"]["count"] == {
        "element": "number",
        "label": "How many",
        "order": 3,
        "required": False,
        "default": 2,
    }


def test_a_good_answer_gets_defaults_and_the_pressed_button() -> None:
    values = forms.check_answer("m", checked(), {"name": "web", "at": "09:30"})
    assert values == {"name": "web", "count": 2, "sure": False, "at": "09:30", "submit": True}


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({}, "'Name' (name) is required"),
        ({"name": ""}, "is required"),
        ({"name": 3}, "'name' must be text, not int"),
        ({"name": "x", "count": "2"}, "'count' must be a number"),
        ({"name": "x", "count": True}, "'count' must be a number"),
        ({"name": "x", "sure": "yes"}, "'sure' must be true or false"),
        ({"name": "x", "at": "25:00"}, "'at' must be a time written HH:MM or HH:MM:SS"),
        ({"name": "x", "colour": "red"}, "the form has no field 'colour'"),
        ({"name": "x", "intro": "hi"}, "'intro' is text to read"),
        ({"name": "x", "submit": "yes"}, "submit button 'submit' takes true or false"),
        ({"name": "x" * (limits.MAX_ANSWER_TEXT_CHARS + 1)}, "at most 16384"),
        (["name"], "must be a JSON object"),
    ],
)
def test_a_bad_answer_is_refused_naming_the_field(answer: object, says: str) -> None:
    with pytest.raises(errors.AnswerInvalid) as caught:
        forms.check_answer("m1", checked(), answer)
    assert says in caught.value.message
    assert "message 'm1'" in caught.value.message and "stays open" in caught.value.message


def test_dates_and_times_are_read_in_iso_8601() -> None:
    form = forms.check_form(
        {
            "properties": {
                "day": {"element": "date-field"},
                "at": {"element": "date-time"},
                "t": {"element": "time"},
            }
        }
    )
    answer = {"day": "2026-12-24", "at": "2026-12-24T18:30", "t": "07:05:09"}
    assert forms.check_answer("m", form, answer) == answer
    with pytest.raises(
        errors.AnswerInvalid, match="'at' must be a datetime written YYYY-MM-DDTHH:MM"
    ):
        forms.check_answer("m", form, {"at": "tomorrow"})
    with pytest.raises(errors.AnswerInvalid, match="'day' must be a date written YYYY-MM-DD"):
        forms.check_answer("m", form, {"day": "24.12.2026"})


def test_with_two_buttons_exactly_one_is_pressed() -> None:
    form = forms.check_form(
        {
            "properties": {
                "approve": {"element": "submit", "label": "Approve"},
                "reject": {"element": "submit", "label": "Reject"},
            }
        }
    )
    assert forms.check_answer("m", form, {"reject": True}) == {"approve": False, "reject": True}
    with pytest.raises(errors.AnswerInvalid, match="press one of the submit buttons"):
        forms.check_answer("m", form, {})
    with pytest.raises(
        errors.AnswerInvalid, match="press one submit button, not approve and reject"
    ):
        forms.check_answer("m", form, {"approve": True, "reject": True})


def test_message_and_request_forms_are_cloudomations_shortcuts() -> None:
    asked = forms.body_of(request="Which host?")
    assert forms.check_answer("m", asked, {"string": "db1"}) == {"string": "db1", "ok": True}
    told = forms.body_of(message="**done**")
    assert told["properties"]["message"] == {
        "element": "markdown",
        "label": "",
        "order": 1,
        "description": "**done**",
    }
    assert forms.check_answer("m", told, {}) == {"ok": True}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("text", "body must be a dict"),
        ({"properties": {}}, "body needs 'properties'"),
        ({"properties": {"a": {"element": "slider"}}}, "element must be one of"),
        (
            {"properties": {"a": {"element": "string", "colour": 1}}},
            "field 'a' has no key 'colour'",
        ),
        ({"properties": {"a": {"element": "number", "default": "x"}}}, "default must be a number"),
        ({"properties": {"a": {"element": "submit"}}, "required": ["a"]}, "cannot be required"),
        (
            {"properties": {"a": {"element": "string"}}, "required": ["b"]},
            "'b', which is not a field",
        ),
        ({"type": "array", "properties": {"a": {"element": "string"}}}, "must be 'object'"),
        (
            {
                "properties": {
                    f"f{i}": {"element": "string"} for i in range(limits.MAX_FORM_FIELDS + 1)
                }
            },
            f"at most {limits.MAX_FORM_FIELDS}",
        ),
        (
            {
                "properties": {
                    "a": {"element": "markdown", "description": "x" * limits.MAX_MESSAGE_BODY_BYTES}
                }
            },
            f"at most {limits.MAX_MESSAGE_BODY_BYTES}",
        ),
    ],
)
def test_a_bad_form_is_refused_naming_what_is_wrong(body: object, says: str) -> None:
    with pytest.raises(errors.FormInvalid) as caught:
        forms.check_form(body)
    assert says in caught.value.message


def test_subject_and_type_are_checked() -> None:
    assert forms.message_type("popup") == "POPUP"
    assert forms.message_type(None) == "INFO"
    with pytest.raises(errors.FormInvalid, match="message_type must be one of INFO, WARN"):
        forms.message_type("LOUD")
    with pytest.raises(errors.FormInvalid, match="NUL"):
        forms.subject("a\x00b")
    with pytest.raises(errors.FormInvalid, match="at most 200"):
        forms.subject("s" * 201)
    with pytest.raises(errors.FormInvalid, match="one of body, message and request"):
        forms.body_of(message="a", request="b")
