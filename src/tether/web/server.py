"""Serving a workspace's app with uvicorn: the socket bound first, held long-polls let go at a stop."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from tether.config import Settings

GRACEFUL_STOP_S = 5  # how long a clean stop waits for open requests to end


class Server(uvicorn.Server):
    """uvicorn's server, answering held link long-polls as soon as a stop begins.

    uvicorn ends the app's lifespan only after the open requests have ended, so a long-poll
    let go in the lifespan's shutdown would keep a clean stop waiting for its whole hold, or
    until GRACEFUL_STOP_S cut it: it is answered when the stop begins instead.
    """

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_stop()
        await super().shutdown(sockets)


def serve(app: FastAPI, settings: Settings) -> None:
    """Bind, print the URL served, and serve ``app`` until SIGTERM or SIGINT."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_STOP_S,
    )
    # Bound here, so that the URL printed is the one served (with --port 0, the port the
    # kernel picked); a request sent while the app is still starting waits in the backlog.
    sock = config.bind_socket()
    sock.listen(config.backlog)  # uvicorn listens only once the app has started: connect now
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    print(f"tether workspace '{settings.name}' serving on {scheme}://{shown}:{port}", flush=True)
    Server(config, on_stop=app.state.linker.release_long_polls).run(sockets=[sock])
