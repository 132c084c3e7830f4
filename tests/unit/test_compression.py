"""zstd and gzip on the link's wire: round trips, the cap on what a body decompresses to,
broken bodies, and which coding is chosen from an Accept-Encoding."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest
import zstandard

from tether import errors
from tether.link import compression, protocol
from tether.web import link_lane

BODY = b'{"log":"' + b"line of text " * 10_000 + b'"}'
GZIPPED = gzip.compress(BODY)
ZSTDED = zstandard.ZstdCompressor().compress(BODY)


@pytest.mark.parametrize("coding", compression.CODINGS)
def test_round_trip(coding: str) -> None:
    packed = compression.compress(BODY, coding)
    assert len(packed) < len(BODY) // 10
    assert compression.decode(packed, coding, len(BODY)) == BODY
    assert compression.decode(packed, coding.upper(), len(BODY)) == BODY
    assert compression.decode(BODY, None, 0) == BODY  # plain bodies pass as they are
    assert compression.decode(BODY, "identity", 0) == BODY


def test_others_read_what_it_writes() -> None:
    assert gzip.decompress(compression.compress(BODY, "gzip")) == BODY
    assert zstandard.ZstdDecompressor().decompress(compression.compress(BODY, "zstd")) == BODY


@pytest.mark.parametrize("coding", compression.CODINGS)
def test_decompression_stops_at_the_cap(coding: str) -> None:
    body = b"\0" * (64 * 1024 * 1024)
    packed = compression.compress(body, coding)
    assert len(packed) < 1024 * 1024
    with pytest.raises(errors.PayloadTooLarge):
        compression.decode(packed, coding, 4 * 1024 * 1024)
    # control: the cap is what refused
    assert compression.decode(packed, coding, len(body)) == body


def _streamed_zstd(body: bytes) -> bytes:
    """A zstd frame written in pieces: its header does not state its size."""
    packer = zstandard.ZstdCompressor().compressobj()
    return packer.compress(body) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "data", "words"),
    [
        ("gzip", GZIPPED[: len(GZIPPED) // 2], "ends early"),
        ("gzip", GZIPPED + b"junk", "bytes after its end"),
        ("gzip", BODY, "does not decompress"),
        ("zstd", ZSTDED[: len(ZSTDED) // 2], "does not decompress"),
        ("zstd", ZSTDED + b"junk", "unused data"),
        ("zstd", BODY, "no readable frame"),
        ("zstd", b"", "no readable frame"),
        ("zstd", _streamed_zstd(BODY), "does not state its size"),
        ("br", BODY, "is not one a link takes"),
    ],
)
def test_broken_bodies_and_other_codings_are_refused(coding: str, data: bytes, words: str) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        compression.decode(data, coding, 10 * len(BODY))
    assert words in refused.value.message


def test_control_a_streamed_zstd_frame_is_whole() -> None:
    """The frame refused above for not stating its size holds the body: the size is what
    was refused, not a broken frame."""
    decompressor = zstandard.ZstdDecompressor()
    assert decompressor.decompress(_streamed_zstd(BODY), max_output_size=len(BODY)) == BODY


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zstd, gzip", "zstd"),
        ("gzip, zstd", "zstd"),  # this side's preference, not the order named
        ("ZSTD", "zstd"),
        ("gzip", "gzip"),
        ("GZIP", "gzip"),
        ("deflate, gzip;q=0.5", "gzip"),
        ("zstd;q=0, gzip", "gzip"),
        ("gzip;q=0", None),
        ("gzip; q=0.0", None),
        ("deflate", None),
        ("", None),
        (None, None),
        ("gzip;q=nonsense", None),
        ("zstd;q=nonsense, gzip", "gzip"),
    ],
)
def test_chosen(value: str | None, expected: str | None) -> None:
    assert compression.chosen(value) == expected


class _Listener:
    """Answers every request with the same signed envelope of 4 KiB."""

    answer = b'{"messages":"' + b"m" * 4096 + b'"}'

    async def handle(self, name: str, body: bytes, headers: dict[str, str]) -> Any:
        return protocol.Sealed(self.answer, {})


@pytest.mark.parametrize(
    ("accept_encoding", "coding"),
    [("zstd, gzip", "zstd"), ("gzip", "gzip"), ("gzip, deflate", "gzip"), (None, None)],
)
def test_an_answer_goes_in_the_coding_its_request_accepts(
    accept_encoding: str | None, coding: str | None
) -> None:
    headers = {"accept-encoding": accept_encoding} if accept_encoding else {}
    listener: Any = _Listener()
    response = asyncio.run(link_lane.sync_response(listener, "hq", b"{}", headers, 1 << 20))
    assert response.headers.get("content-encoding") == coding
    assert response.headers["accept-encoding"] == "zstd, gzip"
    assert compression.decode(bytes(response.body), coding, 1 << 20) == _Listener.answer
    if coding is not None:  # control: compressed, not passed as it is
        assert len(response.body) < len(_Listener.answer) // 10
