"""The REST task: one HTTP(S) request with httpx, the HTTP client tether already uses."""

from __future__ import annotations

import json
import ssl
import urllib.parse
from typing import Any

import httpx

from tether.runner import flow_api
from tether.runner.tasks import TaskFailed, optional, required, unknown_inputs

KNOWN = {
    "url",
    "host",
    "method",
    "headers",
    "params",
    "json",
    "data",
    "auth",
    "user",
    "username",
    "password",
    "token",
    "bearer_token",
    "timeout",
    "verify",
    "ca_certificate",
    "raise_for_status",
}
TEXT_EXCERPT_CHARS = 500


def perform(inputs: dict[str, Any], this: flow_api.Execution) -> dict[str, Any]:
    """Send the request; outputs status_code, headers, text, json."""
    unknown_inputs(inputs, KNOWN)
    url = _url(inputs)
    method = str(optional(inputs, "method", default="GET")).upper()
    timeout = float(optional(inputs, "timeout", default=30))
    request: dict[str, Any] = {
        "headers": _headers(inputs),
        "params": optional(inputs, "params"),
    }
    if inputs.get("json") is not None:
        request["json"] = inputs["json"]
    elif inputs.get("data") is not None:
        data = inputs["data"]
        request["data" if isinstance(data, dict) else "content"] = data
    auth = _basic_auth(inputs)
    try:
        verify = _verify(inputs) if url.startswith("https://") else False
        with httpx.Client(verify=verify, timeout=timeout, auth=auth) as client:
            response = client.request(method, url, **request)
    except httpx.TimeoutException as exc:
        raise TaskFailed(f"{method} {url}: no answer within {timeout:g} s ({exc!r})") from exc
    except httpx.HTTPError as exc:
        raise TaskFailed(f"{method} {url}: {_reason(exc)}") from exc
    this.log(f"{method} {url} -> {response.status_code} {response.reason_phrase}")
    outputs = _outputs(response)
    if response.status_code >= 400 and optional(inputs, "raise_for_status", default=True):
        excerpt = response.text[:TEXT_EXCERPT_CHARS]
        raise TaskFailed(
            f"{method} {url}: the server answered {response.status_code} "
            f"{response.reason_phrase}: {excerpt}",
            outputs,
        )
    return outputs


def _url(inputs: dict[str, Any]) -> str:
    url = str(required(inputs, "url", "host"))
    base = inputs.get("host")
    if base and inputs.get("url"):
        # A connector's host is the base URL that a flow's relative url is joined to.
        url = urllib.parse.urljoin(str(base).rstrip("/") + "/", str(inputs["url"]).lstrip("/"))
        if not url.startswith(str(base).rstrip("/")):
            raise TaskFailed(f"url {inputs['url']!r} leaves the connector's host {base!r}")
    if not url.startswith(("http://", "https://")):
        raise TaskFailed(f"url {url!r} must start with http:// or https://")
    return url


def _headers(inputs: dict[str, Any]) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in dict(optional(inputs, "headers", default={})).items()}
    token = optional(inputs, "bearer_token", "token")
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _basic_auth(inputs: dict[str, Any]) -> httpx.BasicAuth | None:
    auth = inputs.get("auth")
    if isinstance(auth, list | tuple) and len(auth) == 2:
        return httpx.BasicAuth(str(auth[0]), str(auth[1]))
    if auth is not None:
        raise TaskFailed("auth must be [user, password]; for a token use bearer_token")
    user = optional(inputs, "username", "user")
    if user is not None:
        return httpx.BasicAuth(str(user), str(optional(inputs, "password", default="")))
    return None


def _verify(inputs: dict[str, Any]) -> ssl.SSLContext | bool:
    # Only for https: httpx builds the default context (certifi's bundle) eagerly, which cost
    # a task 50-350 ms on a loaded 2-core machine, for a plain http:// URL that never uses it.
    if optional(inputs, "verify", default=True) is False:
        return False
    ca = inputs.get("ca_certificate")
    try:
        return ssl.create_default_context(cadata=ca) if ca else True
    except ssl.SSLError as exc:
        raise TaskFailed(f"ca_certificate is not a PEM certificate: {exc}") from exc


def _reason(exc: httpx.HTTPError) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    if isinstance(cause, ssl.SSLError | ssl.CertificateError) or "CERTIFICATE" in text:
        return f"the TLS handshake failed: {text}; give ca_certificate (PEM) for a private CA"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {text}"
    return text


def _outputs(response: httpx.Response) -> dict[str, Any]:
    try:
        parsed = response.json() if response.content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        parsed = None
    return {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "text": response.text,
        "json": parsed,
    }
