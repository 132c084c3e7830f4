"""The controlled side of the fleet benchmark: N sync configs dialing one hub, in one process.

Runs the engine's own store, runner and linker (no web app) as one workspace whose N sync
configs each dial the hub's matching one; the bench drives it with lines on stdin and stdout.

Run by bench/fleet.py with the venv's python, as a script (it imports only the engine):

    fleet_edges.py --work-dir DIR

where DIR holds edge.pem (this side's private key, shared by every sync config), hub.pub (the
hub's public key) and links.json (a list of {"name", "remote_url"}, one per link); the SQLite
store is made there too.

stdout, one JSON object a line: {"event": "created", "seconds": S} once the N sync configs
are stored, {"event": "started"} once the linker runs, {"event": "status", "states": {...}}
after each "status" line read. stdin: "start", "status", "stop" (or end of input).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import secrets
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import uvloop

from tether.actions.context import Context
from tether.actions.events import Events
from tether.actions.membership import Membership
from tether.link import configs
from tether.link.linker import Linker
from tether.runner.runner import Runner
from tether.store import sync_configs
from tether.store.database import Database

WORKSPACE = "bench-fleet-edges"
MAX_RUNNING = 16
CANCEL_GRACE_S = 3.0
MAX_SKEW_S = 300.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--work-dir", type=Path, required=True, help="edge.pem, hub.pub, links.json; the store"
    )
    parser.add_argument("--long-poll-s", type=float, default=25.0)
    return parser.parse_args(argv)


def create_configs(ctx: Context, args: argparse.Namespace) -> None:
    """One controlled sync config per link, each dialing its own sync config on the hub."""
    own_key = (args.work_dir / "edge.pem").read_text()
    hub_key = (args.work_dir / "hub.pub").read_text()
    for link in json.loads((args.work_dir / "links.json").read_text()):
        values = {"role": "controlled", "own_private_key": own_key, "remote_public_keys": [hub_key]}
        configs.create(ctx, {**values, "name": link["name"], "remote_url": link["remote_url"]})


def link_states(ctx: Context) -> dict[str, int]:
    """How many of this side's sync configs are in each link state."""
    with ctx.db.read() as conn:
        names = [config.name for config in sync_configs.list_all(conn)]
        return dict(Counter(sync_configs.get_state(conn, name).state for name in names))


def report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def serve(args: argparse.Namespace) -> None:
    database = Database(f"sqlite:///{args.work_dir / 'edges.sqlite3'}")
    database.migrate()
    ctx = Context(
        db=database,
        events=Events(),
        workspace_name=WORKSPACE,
        secret=secrets.token_hex(32).encode(),
    )
    started = time.perf_counter()
    await asyncio.to_thread(create_configs, ctx, args)
    report(event="created", seconds=time.perf_counter() - started)
    commands = await _stdin_reader()
    if (await commands.readline()).strip() != b"start":
        return
    loop = asyncio.get_running_loop()
    ctx.events.bind(loop)
    membership = Membership(ctx, kind="serve", name=WORKSPACE, is_alone=True)
    runner = Runner(
        ctx, membership=membership, max_running=MAX_RUNNING, cancel_grace_s=CANCEL_GRACE_S
    )
    linker = Linker(ctx, long_poll_s=args.long_poll_s, max_skew_s=MAX_SKEW_S)
    await membership.start()
    await runner.start()
    await linker.start()
    gc.freeze()  # as `tether serve` does once started (web/app.py)
    report(event="started")
    try:
        await _obey(ctx, commands)
    finally:
        await linker.stop()
        await runner.stop()
        await membership.stop()
        await loop.shutdown_default_executor()
        database.dispose()


async def _stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    await asyncio.get_running_loop().connect_read_pipe(lambda: protocol, sys.stdin)
    return reader


async def _obey(ctx: Context, commands: asyncio.StreamReader) -> None:
    """Answer "status" lines until "stop", the end of input, or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    stop_wait = asyncio.create_task(stopping.wait())
    try:
        while True:
            line_read = asyncio.create_task(commands.readline())
            done, _ = await asyncio.wait(
                {line_read, stop_wait}, return_when=asyncio.FIRST_COMPLETED
            )
            if stop_wait in done:
                line_read.cancel()
                return
            line = line_read.result().strip()
            if line == b"status":
                report(event="status", states=await asyncio.to_thread(link_states, ctx))
            elif line in (b"stop", b""):
                return
    finally:
        stop_wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop_wait


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    uvloop.run(serve(args))  # the event loop `tether serve` runs on
    return 0


if __name__ == "__main__":
    sys.exit(main())
