"""What the OpenAPI document promises: every status an operation can answer, and its body.

Clients are generated from the document, so it says what the server does. A route declares
the errors it can raise with ``answers(...)``; their statuses come from errors.HTTP_STATUS,
the same table that answers them, so the two cannot drift apart. ``document`` adds what
every operation shares: 422 for a request that does not fit the schema, 400 and 413 for a
body that is not JSON or too large, and 503 when the store is unavailable, all with the
error body ``{"error", "message"}``. tests/integration/test_api_contract.py holds the server
to it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tether import errors

REF_PREFIX = "#/components/schemas/"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class ErrorBody(BaseModel):
    """Every refusal: the error's kind, and a message saying what was wrong and what to do."""

    model_config = ConfigDict(extra="forbid", title="Error")
    error: str
    message: str


def answers(*raised: type[errors.TetherError]) -> dict[int | str, dict[str, Any]]:
    """The error answers of an operation that raises ``raised``, for its ``responses=``."""
    kinds: dict[int, list[str]] = {}
    for error in raised:
        listed = kinds.setdefault(errors.status_of(error), [])
        if error.kind not in listed:
            listed.append(error.kind)
    declared: dict[int | str, dict[str, Any]] = {}
    for status, names in sorted(kinds.items()):
        declared[status] = {"model": ErrorBody, "description": "error: " + ", ".join(names)}
        if status == errors.status_of(errors.TooManyLogins):
            declared[status]["headers"] = {
                "Retry-After": {
                    "description": "seconds to wait before trying again",
                    "schema": {"type": "integer"},
                }
            }
    return declared


def _error_answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF_PREFIX + "Error"}}},
    }


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's document) with the answers every operation shares added."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ErrorBody.model_json_schema()
    # FastAPI's own 422 body ({"detail": [...]}) is not what web.errors answers.
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    for path_item in schema.get("paths", {}).values():
        for method in METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            if operation.get("parameters") or "requestBody" in operation:
                responses["422"] = _error_answer(
                    "error: invalid_input (the request does not fit this schema)"
                )
            if "requestBody" in operation:
                _add(responses, 400, "malformed_json")
                _add(responses, 413, "payload_too_large")
            _add(responses, 503, "unavailable", "store_full")
    return schema


def _add(responses: dict[str, Any], status: int, *kinds: str) -> None:
    """Declare ``status`` with the error body, naming ``kinds`` beside any declared already."""
    answer = responses.setdefault(str(status), _error_answer("error:"))
    named = answer["description"].removeprefix("error:").strip()
    listed = [kind for kind in named.split(", ") if kind]
    listed += [kind for kind in kinds if kind not in listed]
    answer["description"] = "error: " + ", ".join(listed)
