"""Cross-site request forgery defences of the UI: a state-changing request must come from this
site (Origin, Sec-Fetch-Site) and carry the form token of its session. Pure checks, no I/O.

The login form has no session yet: its token belongs to a random value in a cookie of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping

from tether import errors

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FIELD = "csrf_token"
SESSION_PURPOSE = "session"
LOGIN_PURPOSE = "login"
# Sent by browsers on every request since 2020-2023; "none" is a typed URL or a bookmark.
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


def form_token(secret: bytes, purpose: str, value: str) -> str:
    """The form token belonging to ``value`` (a session token or a login cookie's value)."""
    message = f"{purpose}:{value}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def is_from_this_site(headers: Mapping[str, str], host: str) -> bool:
    """Whether the browser says the request came from a page of this site (or says nothing).

    Sec-Fetch-Site, which no page can forge, decides when present (so that a proxy that
    rewrites Host does not refuse every form); older browsers' Origin must name ``host``.
    """
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site in SAME_SITE_FETCHES
    origin = headers.get("origin")
    return origin is None or urllib.parse.urlsplit(origin).netloc == host


def check(headers: Mapping[str, str], host: str, sent: str, expected: str | None) -> None:
    """Refuse with 403 a request from another site, or whose form token is not ``expected``."""
    if not is_from_this_site(headers, host):
        raise errors.CrossSiteRequest()
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise errors.CrossSiteRequest()
