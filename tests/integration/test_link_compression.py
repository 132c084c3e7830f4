"""The link endpoint takes gzip envelope bodies, caps what they decompress to, and announces it.

Envelopes are signed as the controlling side 'hq' signs them (tests/support/envelopes.py);
the signature is over the envelope's own bytes, compressed or not on the wire.
"""

from __future__ import annotations

import gzip
from typing import Any

from tests.support.envelopes import Link, assert_rejected, signed_headers
from tether.link import compression, envelope
from tether.link.envelope import Message

GZIP = {"Content-Encoding": "gzip"}


def test_a_gzip_envelope_is_applied_and_every_answer_announces_gzip(link: Link) -> None:
    sealed = link.capture(link.start_message())
    answer = link.post(gzip.compress(sealed.body), {**sealed.headers, **GZIP})
    assert answer.status_code == 200, answer.text
    assert compression.accepts(answer.headers.get("accept-encoding"))
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


def test_a_decompression_bomb_is_refused_with_413(link: Link, settings: Any) -> None:
    """A small gzip body that inflates past the body cap is refused like an oversize body."""
    start = link.start_message()
    big = Message(start.seq, start.type, {**start.body, "name": "x" * settings.max_body_bytes})
    body, headers = link.seal(big)
    bomb = gzip.compress(body)
    assert len(bomb) < settings.max_body_bytes // 100  # far under the cap on the wire
    before = link.state()
    for case, content, extra in (("plain", body, {}), ("gzip", bomb, GZIP)):
        answer = link.post(content, {**headers, **extra})
        assert answer.status_code == 413, (case, answer.text)
        assert answer.json() == {
            "error": "payload_too_large",
            "message": f"the request body is larger than {settings.max_body_bytes} bytes: send less",
        }
        assert link.state() == before
    # control: the same envelope within the cap, compressed, is taken
    sealed = link.capture(start)
    assert link.post(gzip.compress(sealed.body), {**sealed.headers, **GZIP}).status_code == 200
    assert len(link.received()) == 1


def test_unknown_and_broken_encodings_are_refused_with_400(link: Link) -> None:
    sealed = link.capture(link.start_message())
    packed = gzip.compress(sealed.body)
    cases = {
        "br": (packed, {"Content-Encoding": "br"}, "is not one a link takes"),
        "cut short": (packed[: len(packed) // 2], GZIP, "ends early"),
        "trailing bytes": (packed + b"junk", GZIP, "bytes after its end"),
        "not gzip": (sealed.body, GZIP, "does not decompress"),
    }
    before = link.state()
    for case, (content, extra, words) in cases.items():
        answer = link.post(content, {**sealed.headers, **extra})
        assert answer.status_code == 400, (case, answer.text)
        assert answer.json()["error"] == "invalid_input"
        assert words in answer.json()["message"], (case, answer.json())
        assert link.state() == before
