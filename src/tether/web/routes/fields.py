"""Field types the REST routes share: text and JSON that every store can hold, and paging bounds.

Checked when a request is validated, so that a bad value is a 422 that names the field,
never a database error: PostgreSQL refuses NUL in text and NaN in JSON, and no store
encodes half a UTF-16 surrogate pair.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

MAX_OFFSET = 2**31 - 1  # the largest a 32-bit column compares with; no page lies beyond it


def _encodable(value: str) -> str:
    """``value`` if it encodes as UTF-8: a lone surrogate (JSON's "\\ud800") does not."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "text must not hold a lone UTF-16 surrogate (\\ud800-\\udfff)"
            ) from None
    return value


def _storable(value: str) -> str:
    """``value`` if a text column can hold it: UTF-8 without NUL."""
    if "\x00" in value:
        raise ValueError("text must not hold the NUL character (\\u0000)")
    return _encodable(value)


def _storable_json(value: Any) -> Any:
    """``value`` if every store can keep it as JSON: finite numbers, encodable strings."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            _encodable(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite: NaN and Infinity are not JSON")
    return value


class _DocumentedNoNul:
    """Says in the OpenAPI document what ``_storable`` checks: no NUL character.

    A lone surrogate needs no word: JSON Schema's strings are Unicode characters, which it is
    not. A field's own pattern (names) already leaves NUL out, and stays the one pattern.
    """

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if schema.get("type") == "string":
            schema.setdefault("pattern", NO_NUL)
        return schema


NO_NUL = "^[^\\u0000]*$"
Text = Annotated[str, AfterValidator(_storable), _DocumentedNoNul()]
"""Text stored in a text column: no NUL, no lone surrogate."""

Unicode = Annotated[str, AfterValidator(_encodable)]
"""Text stored as UTF-8 bytes or a hash: anything but a lone surrogate."""

JsonValue = Annotated[Any, AfterValidator(_storable_json)]
"""A JSON value stored as JSON: finite numbers and encodable strings."""


def omittable(documented: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """A field a request may leave out (a change keeps the value) but never send as null.

    Typed without ``| None``, so that null is refused as the document says; the default None
    only marks the field as left out, and is not shown, as no value stands for it.
    ``documented`` adds to the field's schema what a later check refuses.
    """

    def finish(schema: dict[str, Any]) -> None:
        schema.pop("default", None)
        schema.update(documented or {})

    return Field(default=None, json_schema_extra=finish, **constraints)
