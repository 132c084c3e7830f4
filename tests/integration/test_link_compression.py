"""The link endpoint takes zstd and gzip envelope bodies, caps what they decompress to, and
announces both.

Envelopes are signed as the controlling side 'hq' signs them (tests/support/envelopes.py);
the signature is over the envelope's own bytes, compressed or not on the wire.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest
import zstandard

from tests.support.envelopes import Link, assert_rejected, signed_headers
from tether.link import envelope
from tether.link.envelope import Message

GZIP = {"Content-Encoding": "gzip"}
CODINGS = ["zstd", "gzip"]


def pack(coding: str, body: bytes) -> bytes:
    """``body`` compressed as another implementation would."""
    if coding == "gzip":
        return gzip.compress(body)
    return zstandard.ZstdCompressor().compress(body)


@pytest.mark.parametrize("coding", CODINGS)
def test_a_compressed_envelope_is_applied_and_every_answer_announces_both(
    link: Link, coding: str
) -> None:
    sealed = link.capture(link.start_message())
    answer = link.post(pack(coding, sealed.body), {**sealed.headers, "Content-Encoding": coding})
    assert answer.status_code == 200, answer.text
    assert answer.headers.get("accept-encoding") == "zstd, gzip"
    assert len(link.received()) == 1
    assert link.applied_seq() == 1
    reply = envelope.decode(answer.content)
    assert reply.reply_to == envelope.body_digest(sealed.body)  # the envelope's bytes, as ever


def test_the_signature_covers_the_envelope_not_the_compressed_bytes(link: Link) -> None:
    body, _ = link.seal(link.start_message())
    packed = gzip.compress(body)
    before = link.state()
    # signed over what goes on the wire: refused like any signature of other bytes
    answer = link.post(packed, {**signed_headers(packed, link.remote_key), **GZIP})
    assert_rejected(link, answer, before)


@pytest.mark.parametrize("coding", CODINGS)
def test_a_decompression_bomb_is_refused_with_413(link: Link, settings: Any, coding: str) -> None:
    """A small body that inflates past the body cap is refused like an oversize body."""
    start = link.start_message()
    big = Message(start.seq, start.type, {**start.body, "name": "x" * settings.max_body_bytes})
    body, headers = link.seal(big)
    bomb = pack(coding, body)
    assert len(bomb) < settings.max_body_bytes // 100  # far under the cap on the wire
    before = link.state()
    for case, content, extra in (
        ("plain", body, {}),
        (coding, bomb, {"Content-Encoding": coding}),
    ):
        answer = link.post(content, {**headers, **extra})
        assert answer.status_code == 413, (case, answer.text)
        assert answer.json() == {
            "error": "payload_too_large",
            "message": f"the request body is larger than {settings.max_body_bytes} bytes: send less",
        }
        assert link.state() == before
    # control: the same envelope within the cap, compressed, is taken
    sealed = link.capture(start)
    packed = pack(coding, sealed.body)
    assert link.post(packed, {**sealed.headers, "Content-Encoding": coding}).status_code == 200
    assert len(link.received()) == 1


def test_unknown_and_broken_encodings_are_refused_with_400(link: Link) -> None:
    sealed = link.capture(link.start_message())
    packed = gzip.compress(sealed.body)
    framed = pack("zstd", sealed.body)
    zstd = {"Content-Encoding": "zstd"}
    cases = {
        "br": (packed, {"Content-Encoding": "br"}, "is not one a link takes"),
        "cut short": (packed[: len(packed) // 2], GZIP, "ends early"),
        "trailing bytes": (packed + b"junk", GZIP, "bytes after its end"),
        "not gzip": (sealed.body, GZIP, "does not decompress"),
        "zstd cut short": (framed[: len(framed) // 2], zstd, "does not decompress"),
        "zstd trailing bytes": (framed + b"junk", zstd, "unused data"),
        "not zstd": (sealed.body, zstd, "no readable frame"),
    }
    before = link.state()
    for case, (content, extra, words) in cases.items():
        answer = link.post(content, {**sealed.headers, **extra})
        assert answer.status_code == 400, (case, answer.text)
        assert answer.json()["error"] == "invalid_input"
        assert words in answer.json()["message"], (case, answer.json())
        assert link.state() == before
