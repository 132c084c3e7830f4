"""The fork server's warm-up: a few pretend executions before it forks any child.

Python does work the first time a path runs: the adaptive interpreter rewrites the bytecode
of each function it calls a few times, caches fill, buffers and interned strings appear. In
a child, every such write copies a page of the preloaded heap, and the child keeps that page
for as long as its execution lives (for hours, when it sleeps). Done here, once, the pages
are written before the fork and every child shares them: a sleeping child holds less memory
of its own (bench/README.md, "waiting").

What runs is the child's own path (child.execute) over a socket pair, with a pretend engine
in a thread that answers every request with nothing: the order is read from the channel, a
script is compiled and run, it prints, logs and sleeps the long way (a request). The thread
has ended and the sockets are closed before this returns: the fork server forks no child
while another thread runs. Standard library only, like everything on the child side.
"""

from __future__ import annotations

import json
import linecache
import socket
import sys
import threading

from tether.runner import child, flow_api
from tether.runner.channel import Channel, encode
from tether.statuses import Status

ROUNDS = 10  # the interpreter specializes a function after 8 calls or so
TIMEOUT_S = 5.0
FILENAME = "<flow warm-up>"
SCRIPT = """\
def handler(system, this, inputs):
    print("warming up", inputs["round"])
    this.log("warming up", round=inputs["round"])
    this.sleep(inputs["seconds"])
"""


def warm_up(rounds: int = ROUNDS) -> int:
    """Run ``rounds`` pretend executions of the child's path in this process; how many of
    them succeeded (a warm-up whose script fails warms less of the path)."""
    succeeded = 0
    engine_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for end in (engine_end, child_end):
        end.settimeout(TIMEOUT_S)  # a warm-up that hangs fails instead
    engine = threading.Thread(target=_pretend_engine, args=(engine_end,), name="warm-up")
    streams = sys.stdout, sys.stderr
    try:
        with engine_end, child_end:
            engine.start()
            channel = Channel(child_end)
            for round_ in range(rounds):
                engine_end.sendall(encode(_order(round_)))
                order = channel.receive()
                if order is not None:
                    status, _ = child.execute(flow_api.Engine(channel), order)
                    succeeded += status == Status.ENDED_SUCCESS
            child_end.shutdown(socket.SHUT_WR)  # the pretend engine reads its end and stops
            engine.join()
    finally:
        sys.stdout, sys.stderr = streams
        linecache.cache.pop(FILENAME, None)
    return succeeded


def _order(round_: int) -> dict[str, object]:
    execution = {
        "id": f"warm-up-{round_}",
        "name": "warm-up",
        "flow_name": None,
        "input_value": {"round": round_, "seconds": flow_api.SLEEP_FREES_SLOT_S},
    }
    return {"op": "run", "execution": execution, "script": SCRIPT}


def _pretend_engine(sock: socket.socket) -> None:
    """Answer each request with nothing until the other end is shut."""
    with sock.makefile("rb") as lines:
        for line in lines:
            request = json.loads(line)
            if "rid" in request:
                sock.sendall(encode({"rid": request["rid"], "result": None}))
