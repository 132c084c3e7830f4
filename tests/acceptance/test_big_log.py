"""A remote execution that writes a big log: the controlling side gets every line, in order,
and the link compressed it on the wire (the fault proxy counts what passed, both ways).

The rate and the memory are the bench's (`./dev bench --only biglog`); here only that the
log arrives whole. Both dial directions.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bench import biglog

from tests.acceptance.conftest import DIRECTIONS, Pair
from tests.support.history import HUB_CONFIG

SIZES = biglog.Sizes(megabytes=20, line_bytes=2000)  # a few seconds on the 2-core machine


@pytest.mark.timeout(300)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_big_remote_log_arrives_whole_in_order_and_compressed(
    linked_pair: Callable[..., Pair], direction: str
) -> None:
    pair = linked_pair(direction, has_proxy=True)
    assert pair.proxy is not None
    pair.hub_api.create_flow("biglog", biglog.SCRIPT)
    before = pair.proxy.bytes_passed
    inputs = {"lines": SIZES.lines, "line_bytes": SIZES.line_bytes}
    started = pair.hub_api.start("biglog", input_value=inputs, remote_workspace_name=HUB_CONFIG)
    ended = pair.hub_api.wait_ended(started["id"], timeout_s=240)
    assert ended["status"] == "ENDED_SUCCESS", ended
    wire_bytes = pair.proxy.bytes_passed - before

    seen = 0
    while entries := pair.hub_api.ok(
        "GET",
        f"/execution/{started['id']}/log",
        params={"offset": seen, "limit": biglog.LOG_PAGE},
    ):
        for entry in entries:
            text = entry["message"]
            assert text[:11] == f"{seen:010d} ", f"entry {seen} is {text[:40]!r}"
            assert len(text) == SIZES.line_bytes, f"entry {seen} has {len(text)} characters"
            seen += 1
    assert seen == SIZES.lines

    # Sent as it is, the log alone would pass the proxy (JSON escapes only add to it); the
    # lines compress to about 2.6 x less with the link's zstd at level 2.
    assert wire_bytes < SIZES.log_bytes / 2, (wire_bytes, SIZES.log_bytes)
