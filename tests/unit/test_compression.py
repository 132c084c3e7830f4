"""gzip on the link's wire: round trip, the cap on what a body decompresses to, the announcement."""

from __future__ import annotations

import gzip

import pytest

from tether import errors
from tether.link import compression


def test_round_trip_and_the_stdlib_reads_it() -> None:
    body = b'{"log":"' + b"line of text " * 10_000 + b'"}'
    packed = compression.compress(body)
    assert len(packed) < len(body) // 10
    assert gzip.decompress(packed) == body
    assert compression.decode(packed, "gzip", len(body)) == body
    assert compression.decode(body, None, 0) == body  # plain bodies pass as they are
    assert compression.decode(body, "identity", 0) == body


def test_decompression_stops_at_the_cap() -> None:
    body = b"\0" * (64 * 1024 * 1024)
    packed = gzip.compress(body)
    with pytest.raises(errors.PayloadTooLarge):
        compression.decompress(packed, 4 * 1024 * 1024)
    assert compression.decompress(packed, len(body)) == body  # control: the cap is what refused


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("deflate", False),
        ("", False),
        (None, False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accepts(value: str | None, expected: bool) -> None:
    assert compression.accepts(value) is expected
