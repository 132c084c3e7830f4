"""Envelope bodies compressed on the wire: gzip as the HTTP Content-Encoding, both ways.

The signature, the ``reply_to`` digest and every check are over the envelope's own bytes,
as before: compression wraps the signed body and is undone before anything reads it. A
side takes compressed bodies only once the other has announced it (docs/protocol.md,
"Compression"), and never decompresses past a cap (a small body that inflates to gigabytes
is refused, not unpacked). Pure standard library.
"""

from __future__ import annotations

import zlib

from tether import errors

CODING = "gzip"
# Below this an envelope goes as it is: a poll or an ack compresses to about the same size.
MIN_BYTES = 1024
# zlib level 1: on the (loaded) 2-core development machine, a 1 MB envelope of the biglog
# bench's log lines took 46 ms at level 1 (2.59 x smaller), 106 ms at level 6 (2.83 x).
LEVEL = 1
_GZIP_WBITS = 31  # zlib's window bits for the gzip container (16 + 15)


def compress(body: bytes) -> bytes:
    """``body`` as one gzip member."""
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    return packer.compress(body) + packer.flush()


def decompress(data: bytes, limit: int) -> bytes:
    """The bytes ``data`` (one gzip member) holds, refusing to produce more than ``limit``.

    Raises:
        errors.PayloadTooLarge: it holds more than ``limit`` bytes (read no further).
        errors.InvalidInput: it is no complete gzip member, or something follows it.
    """
    unpacker = zlib.decompressobj(_GZIP_WBITS)
    try:
        body = unpacker.decompress(data, limit + 1)
    except zlib.error as exc:
        raise errors.InvalidInput(detail=f"the gzip body does not decompress ({exc})") from exc
    if len(body) > limit:
        raise errors.PayloadTooLarge(limit=limit)
    if not unpacker.eof:
        raise errors.InvalidInput(detail="the gzip body ends early: send it whole")
    if unpacker.unused_data:
        raise errors.InvalidInput(detail="the gzip body has bytes after its end")
    return body


def decode(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """A body as it came with its Content-Encoding (none, identity or gzip), decompressed.

    Raises:
        errors.PayloadTooLarge: it decompresses to more than ``limit`` bytes.
        errors.InvalidInput: an encoding other than gzip, or a broken gzip body.
    """
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return data
    if coding != CODING:
        raise errors.InvalidInput(
            detail=f"the Content-Encoding {coding[:40]!r} is not one a link takes: "
            f"send {CODING} or none"
        )
    return decompress(data, limit)


def accepts(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding value names gzip with a weight above zero."""
    for part in (accept_encoding or "").split(","):
        name, _, parameters = part.partition(";")
        if name.strip().lower() != CODING:
            continue
        weight = parameters.strip().lower().removeprefix("q=").strip() if parameters else "1"
        try:
            return float(weight) > 0
        except ValueError:
            return False
    return False
