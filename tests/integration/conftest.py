"""Fixtures for the link endpoint's tests: the keys on both sides, and a listening sync config."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from tests.support.envelopes import Link, create_listener
from tests.support.workspace import ApiClient
from tether.link import keys


@pytest.fixture(scope="session")
def remote_key() -> rsa.RSAPrivateKey:
    """The controlling side's signing key; 'edge' holds its public half."""
    return keys.generate_private_key(2048)


@pytest.fixture(scope="session")
def own_key() -> rsa.RSAPrivateKey:
    """The signing key of 'edge' itself."""
    return keys.generate_private_key(2048)


@pytest.fixture(scope="session")
def stranger_key() -> rsa.RSAPrivateKey:
    """A key 'edge' has never been told about."""
    return keys.generate_private_key(2048)


@pytest.fixture
def link(
    api: ApiClient, app_client: TestClient, settings: Any, remote_key: Any, own_key: Any
) -> Link:
    """Sync config 'edge' listening in the in-process workspace, trusting ``remote_key``."""
    create_listener(api, own_key, remote_key)
    return Link(api, app_client, remote_key, settings.max_clock_skew_s)
