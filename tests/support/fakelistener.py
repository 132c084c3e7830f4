"""A listener that misbehaves on purpose, for a dialer under test: it redirects, answers
without end, or answers signed envelopes from a sync config of another name.

A plain threaded HTTP server on a free loopback port; it knows tether only to sign.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from tether.link import envelope, keys

SYNC_PATH = "/api/latest/sync_config/edge/sync"


class FakeListener:
    """Answers POSTs with ``behaviour(handler, body)``; ``hits`` counts requests per path."""

    def __init__(self, behaviour: Callable[[Any, bytes], None]) -> None:
        self.hits: dict[str, int] = {}
        self.released = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake.hits[self.path] = fake.hits.get(self.path, 0) + 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                behaviour(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.released = self.released  # type: ignore[attr-defined]  # for a stalling answer
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, prefix: str = "") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{prefix}{SYNC_PATH}"

    def __enter__(self) -> FakeListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()


def redirect_to(location: str) -> Callable[[Any, bytes], None]:
    """Answer every request with 307 to ``location``, a redirect that keeps the method and body."""

    def behaviour(handler: Any, _body: bytes) -> None:
        handler.send_response(307)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return behaviour


def refuse(handler: Any, _body: bytes) -> None:
    handler.send_response(401)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def endless(chunk_count: int) -> Callable[[Any, bytes], None]:
    """Answer 200 with ``chunk_count`` chunks of 64 KiB and no length, then stall until the
    listener closes."""

    def behaviour(handler: Any, _body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        chunk = b" " * 65536
        try:
            for _ in range(chunk_count):
                handler.wfile.write(chunk)
            handler.wfile.flush()
        except OSError:
            return  # the dialer hung up: what it should do
        handler.server.released.wait(30)

    return behaviour


def answer_as(sender: str, key: rsa.RSAPrivateKey) -> Callable[[Any, bytes], None]:
    """Answer with a well-signed, empty envelope to 'hq' that names ``sender`` as its sender."""

    def behaviour(handler: Any, body: bytes) -> None:
        sealed = envelope.Envelope(
            protocol=envelope.PROTOCOL_VERSION,
            sender=sender,
            receiver="hq",
            key=keys.fingerprint(key.public_key()),
            nonce=envelope.new_nonce(),
            sent_at=time.time(),
            ack=0,
            messages=(),
            reply_to=envelope.body_digest(body),
            hello={"workspace": "far", "role": "controlled", "protocols": [1], "poll_s": 0},
        )
        answer = envelope.encode(sealed)
        handler.send_response(200)
        handler.send_header(envelope.SIGNATURE_HEADER, envelope.sign(key, answer))
        handler.send_header(envelope.KEY_HEADER, keys.fingerprint(key.public_key()))
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    return behaviour
