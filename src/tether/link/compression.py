"""Envelope bodies compressed on the wire: zstd or gzip as the HTTP Content-Encoding.

The signature, the ``reply_to`` digest and every check are over the envelope's own bytes,
as before: compression wraps the signed body and is undone before anything reads it. A
side takes compressed bodies only once the other has announced it (docs/protocol.md,
"Compression"), and never decompresses past a cap (a small body that inflates to gigabytes
is refused, not unpacked).

zstd (RFC 8878) is preferred whenever the other side names it; gzip remains for a side of
an earlier version, which names only gzip. Measured on the 2-core development machine on a
1 MB envelope of the biglog bench's log lines: zstd level 2 took 4.1 ms to compress (2.64
times smaller) and 0.9 ms to unpack; zlib level 1 took 11.8 ms (2.60 times) and 3.8 ms.
"""

from __future__ import annotations

import zlib

import zstandard

from tether import errors

ZSTD = "zstd"
GZIP = "gzip"
CODINGS = (ZSTD, GZIP)  # in the order this side prefers them
# What every request and answer says in Accept-Encoding: the codings this side unpacks.
ANNOUNCED = ", ".join(CODINGS)
# Below this an envelope goes as it is: a poll or an ack compresses to about the same size.
MIN_BYTES = 1024
ZSTD_LEVEL = 2  # level 1: 2.38 times smaller for the same time; level 3: 50 % more time
GZIP_LEVEL = 1  # level 6: 2.83 times smaller for 2.3 times the time
_GZIP_WBITS = 31  # zlib's window bits for the gzip container (16 + 15)


def compress(body: bytes, coding: str) -> bytes:
    """``body`` as one zstd frame (which states its size) or one gzip member."""
    if coding == ZSTD:
        # A compressor is not thread-safe; making one costs microseconds.
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    return packer.compress(body) + packer.flush()


def decode(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """A body as it came with its Content-Encoding (none, identity, zstd or gzip), unpacked.

    Raises:
        errors.PayloadTooLarge: it decompresses to more than ``limit`` bytes.
        errors.InvalidInput: another encoding, or a broken body.
    """
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return data
    if coding == ZSTD:
        return _unzstd(data, limit)
    if coding == GZIP:
        return _gunzip(data, limit)
    raise errors.InvalidInput(
        detail=f"the Content-Encoding {coding[:40]!r} is not one a link takes: "
        f"send {' or '.join(CODINGS)} or none"
    )


def _unzstd(data: bytes, limit: int) -> bytes:
    """The bytes of one zstd frame; its header must state its size, at most ``limit``
    (zstd then never writes more than that: a frame holding more is an error)."""
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise errors.InvalidInput(detail=f"the zstd body has no readable frame ({exc})") from exc
    if size < 0:
        raise errors.InvalidInput(
            detail="the zstd body's frame does not state its size: compress it in one piece"
        )
    if size > limit:
        raise errors.PayloadTooLarge(limit=limit)
    try:
        return zstandard.ZstdDecompressor().decompress(data, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise errors.InvalidInput(detail=f"the zstd body does not decompress ({exc})") from exc


def _gunzip(data: bytes, limit: int) -> bytes:
    """The bytes ``data`` (one gzip member) holds, refusing to produce more than ``limit``."""
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


def chosen(accept_encoding: str | None) -> str | None:
    """The coding to send to a side whose Accept-Encoding is ``accept_encoding``: the first
    of CODINGS it names with a weight above zero; None: send plain bodies."""
    accepted = _accepted(accept_encoding)
    return next((coding for coding in CODINGS if coding in accepted), None)


def _accepted(accept_encoding: str | None) -> set[str]:
    names: set[str] = set()
    for part in (accept_encoding or "").split(","):
        name, _, parameters = part.partition(";")
        weight = parameters.strip().lower().removeprefix("q=").strip() if parameters else "1"
        try:
            if float(weight) > 0:
                names.add(name.strip().lower())
        except ValueError:
            continue
    return names
