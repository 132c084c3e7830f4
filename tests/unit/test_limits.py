"""The caps on one log entry, outputs and message: cutting, the marker, and that every cap
keeps one link message within an envelope."""

from __future__ import annotations

import socket
import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from tether import errors, limits
from tether.actions import outgoing
from tether.link import envelope, exchange
from tether.runner import channel, flow_api
from tether.runner.process import OutputLines
from tether.store import database


def test_the_caps_are_the_documented_ones() -> None:
    """docs/security.md and docs/flow_api.md name these numbers."""
    assert limits.MAX_LOG_ENTRY_BYTES == 65536
    assert limits.MAX_LOG_FIELDS_BYTES == 16384
    assert limits.MAX_EXECUTION_MESSAGE_BYTES == 65536
    assert limits.MAX_OUTPUTS_BYTES == 1048576
    assert limits.DEFAULT_EXECUTION_LOG_MB == 256
    assert outgoing.MAX_BODY_BYTES == 3 * 1048576
    assert outgoing.MAX_LOG_BYTES_PER_UPDATE == 1048576


def test_an_update_at_every_cap_still_fits_one_envelope() -> None:
    """Outputs, a message (every character escaped as six bytes) and a log chunk whose last
    entry may overshoot it by one entry (escaped too), with room for the rest of the body."""
    worst_update = (
        limits.MAX_OUTPUTS_BYTES
        + 6 * limits.MAX_EXECUTION_MESSAGE_BYTES
        + outgoing.MAX_LOG_BYTES_PER_UPDATE
        + 6 * limits.MAX_LOG_ENTRY_BYTES
        + limits.MAX_LOG_FIELDS_BYTES
        + 4096
    )
    assert worst_update <= outgoing.MAX_BODY_BYTES
    assert exchange.MAX_BATCH_BYTES <= outgoing.MAX_BODY_BYTES
    assert outgoing.MAX_BODY_BYTES + 64 * 1024 <= envelope.MAX_BODY_BYTES


def test_a_long_text_was_kept_whole() -> None:
    text = "x" * (5 * 1024 * 1024)
    cut = limits.cut_text(text, 65536)
    assert cut.endswith("... [cut: 5242880 bytes, limit 65536]")
    assert cut.startswith("x" * 60000)
    assert len(cut.encode()) <= 65536


def test_a_text_within_the_cap_is_left_alone() -> None:
    for text in ("", "short", "é" * 32768, "x" * 65536):
        assert limits.cut_text(text, 65536) is text


@settings(max_examples=50)  # each example encodes texts of kilobytes a few times
@given(st.text(min_size=0, max_size=3000), st.integers(min_value=0, max_value=4000))
def test_a_cut_text_fits_its_cap_and_starts_as_the_original(text: str, limit: int) -> None:
    cut = limits.cut_text(text, max(limit, 80))
    size = len(text.encode("utf-8", "surrogatepass"))
    assert len(cut.encode("utf-8", "surrogatepass")) <= max(limit, 80)
    if size <= max(limit, 80):
        assert cut == text
    else:
        head, _, marker = cut.rpartition("... [cut: ")
        assert text.startswith(head)
        assert marker == f"{size} bytes, limit {max(limit, 80)}]"


def test_huge_log_fields_are_replaced_by_a_note() -> None:
    fields, size = limits.cut_fields({"blob": "b" * 20000})
    assert fields == {"cut": "fields of 20011 bytes, limit 16384"}
    assert size < 100
    assert limits.cut_fields({"stream": "stderr"}) == ({"stream": "stderr"}, 19)


def test_a_programs_long_line_was_logged_in_pieces_of_any_number() -> None:
    """A line over the cap becomes one entry: its head and a marker with its whole size."""
    lines = OutputLines(100)
    out = lines.feed(b"short\n" + b"a" * 150)
    out += lines.feed(b"a" * 150 + b"\nnext\n")
    out += lines.feed(b"tail")
    assert out[0] == "short"
    assert out[1].startswith("a" * 30) and out[1].endswith("... [cut: 300 bytes, limit 100]")
    assert len(out[1]) <= 100
    assert out[2] == "next"
    assert lines.end() == "tail"
    assert lines.end() is None


def test_a_line_split_inside_a_character_is_decoded_whole() -> None:
    lines = OutputLines(100)
    encoded = "héllo\n".encode()
    assert lines.feed(encoded[:2]) == []
    assert lines.feed(encoded[2:]) == ["héllo"]


def operational(orig: Exception) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, orig)


class DiskFull(Exception):
    sqlstate = "53100"


def test_a_full_disk_was_reported_as_an_unavailable_database() -> None:
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    assert isinstance(database.store_error(operational(sqlite_full)), errors.StoreFull)
    pg_full = DiskFull('could not extend file "base/1/2": No space left on device')
    assert isinstance(database.store_error(operational(pg_full)), errors.StoreFull)
    locked = database.store_error(operational(sqlite3.OperationalError("database is locked")))
    assert type(locked) is errors.StoreUnavailable
    full = errors.StoreFull(detail="database or disk is full")
    assert errors.http_status(full) == 503
    assert "free" in full.message and full.kind == "store_full"


def test_an_unavailable_sqlite_store_names_the_call_that_failed() -> None:
    """SQLite's "disk I/O error" covers a dozen system calls; its extended code says which."""
    failed = sqlite3.OperationalError("disk I/O error")
    failed.sqlite_errorname = "SQLITE_IOERR_SHMMAP"
    error = database.store_error(operational(failed))
    assert type(error) is errors.StoreUnavailable
    assert "disk I/O error (SQLITE_IOERR_SHMMAP)" in error.message


def test_a_request_longer_than_the_engine_reads_ended_the_execution(monkeypatch: Any) -> None:
    """The child refuses to send it (the script sees InvalidInputError); the channel lives on."""
    monkeypatch.setattr(channel, "MAX_LINE_BYTES", 200)
    child_end, engine_end = socket.socketpair()
    with child_end, engine_end:
        engine = flow_api.Engine(channel.Channel(child_end))
        with pytest.raises(flow_api.InvalidInputError, match="at most 200 bytes"):
            engine.send({"op": "save", "output_value": {"big": "x" * 500}})
        engine.send({"op": "log", "message": "small"})
        assert engine_end.recv(1000).startswith(b'{"op":"log"')
