"""Turns every error into the JSON answer ``{"error", "message"}`` with the fitting status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import compile_path

from tether import errors

log = logging.getLogger(__name__)


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=status)


def tether_error_response(error: errors.TetherError) -> JSONResponse:
    response = error_response(errors.http_status(error), error.kind, error.message)
    retry_after_s = error.fields.get("retry_after_s")
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return response


def internal_error_response() -> JSONResponse:
    return error_response(500, "internal", "the workspace failed to answer: see its log")


def describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    """Status, kind and message for a request FastAPI could not validate."""
    problems = []
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            detail = item.get("ctx", {}).get("error", "invalid JSON")
            return 400, "malformed_json", errors.MalformedJson(detail=detail).message
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return 422, "invalid_input", "the request is invalid: " + "; ".join(problems)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (RFC 9110's Allow).

    Starlette's own 405 names only the methods of the first route whose path matched; a path
    such as /flow/{name} is served by one route per method.
    """
    index = getattr(request.app.state, "method_index", None)
    if index is None:
        index = [
            (compile_path(route.path)[0], route.methods)
            for route in iter_route_contexts(request.app.router.routes)
            if route.methods and route.path
        ]
        request.app.state.method_index = index
    path = request.scope["path"]
    return sorted({m for pattern, methods in index if pattern.match(path) for m in methods})


def method_not_allowed(request: Request) -> JSONResponse:
    allowed = allowed_methods(request)
    message = f"{request.method} is not allowed here: use {', '.join(allowed)}"
    response = error_response(405, "method_not_allowed", message)
    response.headers["Allow"] = ", ".join(allowed)
    return response


def install(app: FastAPI) -> None:
    """Register the error handlers on ``app``."""

    @app.exception_handler(errors.TetherError)
    async def tether_error(_request: Request, exc: errors.TetherError) -> JSONResponse:
        return tether_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*describe_validation(exc))

    @app.exception_handler(ClientDisconnect)
    async def disconnected(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The body never arrived whole (the client left, or its chunks were malformed): the
        # answer reaches no one, but this is the client's doing, not the workspace's failure.
        log.info("a client left before its request body ended")
        error = errors.InvalidInput(detail="the request body ended early: send it whole")
        return error_response(errors.http_status(error), error.kind, error.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return method_not_allowed(request)
        kinds = {404: "not_found"}
        message = (
            "no such endpoint: see /docs for the API" if exc.status_code == 404 else str(exc.detail)
        )
        return error_response(exc.status_code, kinds.get(exc.status_code, "error"), message)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return internal_error_response()
