"""The dialer against a listener that misbehaves: it never follows a redirect, reads an answer
only up to the size of an envelope, and refuses an answer from a sync config of another name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support import fakelistener
from tests.support.fakelistener import FakeListener
from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient
from tether.link import dialer, keys


def dial(api: ApiClient, url: str, own_key: Any, remote_key: Any) -> None:
    """Create sync config 'hq', controlling, dialing ``url``."""
    api.ok(
        "POST",
        "/sync_config",
        json={
            "name": "hq",
            "remote_url": url,
            "own_private_key": keys.private_pem(own_key),
            "remote_public_key": keys.public_pem(remote_key),
        },
    )


def wait_for_error(api: ApiClient, is_it: Callable[[str], bool], timeout_s: float) -> str:
    """The last error of 'hq' once ``is_it`` holds for it; fails after ``timeout_s``."""

    def matching() -> str:
        error = api.ok("GET", "/sync_config/hq/status")["last_error"] or ""
        assert is_it(error), f"the last error: {error!r}"
        return error

    return wait_until(matching, "the error", timeout_s)


def test_the_dialer_followed_a_redirect_with_its_signed_request(
    api: ApiClient, own_key: Any, remote_key: Any
) -> None:
    elsewhere = FakeListener(fakelistener.refuse)
    with elsewhere, FakeListener(fakelistener.redirect_to(elsewhere.url())) as listener:
        dial(api, listener.url(), own_key, remote_key)
        error = wait_for_error(api, lambda e: "307" in e or "401" in e, 10)
        assert listener.hits
    assert elsewhere.hits == {}
    assert "redirect" in error


def test_the_dialer_read_an_answer_of_any_size_whole(
    api: ApiClient, own_key: Any, remote_key: Any
) -> None:
    """An answer of 20 MiB that then stalls is cut off at the envelope limit, at once."""
    with FakeListener(fakelistener.endless(20 * 16)) as endless:
        dial(api, endless.url(), own_key, remote_key)
        error = wait_for_error(api, bool, 5)
    assert f"more than {dialer.MAX_ANSWER_BYTES} bytes" in error


def test_the_dialer_took_an_answer_from_another_sync_config(
    api: ApiClient, own_key: Any, remote_key: Any
) -> None:
    """Well signed by the trusted key, but from sync config 'other', not 'edge' of remote_url."""
    with FakeListener(fakelistener.answer_as("other", remote_key)) as listener:
        dial(api, listener.url(), own_key, remote_key)
        error = wait_for_error(api, bool, 10)
    assert "comes from sync config 'other', not 'edge'" in error
    assert api.ok("GET", "/sync_config/hq/status")["state"] == "failing"
