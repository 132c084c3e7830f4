"""Hostile input at the link endpoint: replays by the thousand and mutated envelopes by the hundred.

A captured request, sealed by the dialer's own code, is replayed one after another (in
process) and all at once (against a real `tether serve`): it takes effect once. Hypothesis
mutates captured requests (bytes flipped, cut or added; fields reordered, repeated, dropped
or changed; sender and receiver swapped; times shifted; headers changed) and posts each with
the original signature and, for changes to the JSON, signed again with a key the listener
does not hold, and with the right key where the change breaks a rule of the protocol: every
one is answered 401 (413 when too large) and leaves the store as it was. Sizes scale with
TETHER_TEST_REPLAYS and TETHER_TEST_EXAMPLES.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import json
import os
import socket
import string
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.support.envelopes import (
    LISTENER,
    QUICK_SCRIPT,
    REJECTED,
    Link,
    Sealed,
    create_controlling,
    create_listener,
    seal_as_dialer,
    signed_headers,
    start_message,
    store_state,
)
from tests.support.workspace import ApiClient, ServedWorkspace
from tether.link import envelope, keys
from tether.link.envelope import Message
from tether.store.database import Database

REPLAYS = int(os.environ.get("TETHER_TEST_REPLAYS", "1000"))
CONCURRENCY = 16  # requests in flight at once against the served workspace
REPLAY_HOLD_S = 300  # the served workspace's --long-poll-s (see served_link)
SIGNATURE = envelope.SIGNATURE_HEADER
KEY = envelope.KEY_HEADER
BASE64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
HEADER_TEXT = BASE64 + "=:. -_"
# A shift of the send time this far past the allowed skew stays outside it for a whole test.
SKEW_MARGIN_S = 120.0


def replay_sequentially(link: Link, sealed: Sealed, times: int) -> collections.Counter[int]:
    return collections.Counter(
        link.post(sealed.body, sealed.headers).status_code for _ in range(times)
    )


def test_a_captured_start_replayed_a_thousand_times_in_turn_runs_once(link: Link) -> None:
    """The first delivery creates the execution; every replay is 401 and changes nothing."""
    captured = link.capture(start_message())
    assert link.post(captured.body, captured.headers).status_code == 200
    link.settle()
    before = link.state()
    assert before["nonces"] == 1

    assert replay_sequentially(link, captured, REPLAYS) == {401: REPLAYS}
    assert link.state() == before
    assert len(link.received()) == 1
    assert link.applied_seq() == 1


@dataclasses.dataclass
class ServedLink:
    """Sync config 'edge' in a real `tether serve`, its store, and an admin client."""

    workspace: ServedWorkspace
    api: ApiClient
    database: Database

    def received(self) -> list[dict[str, Any]]:
        return [e for e in self.api.ok("GET", "/execution") if e["sync_config"] == LISTENER]

    def settle(self) -> None:
        for record in self.received():
            self.api.wait_ended(record["id"])


@pytest.fixture
def served_link(
    tmp_path: Path, database_url: str, own_key: rsa.RSAPrivateKey, remote_key: rsa.RSAPrivateKey
) -> Iterator[ServedLink]:
    # A link silent past the long-poll hold (and a grace) shows "connecting"; a thousand
    # replays on a slow machine took longer than the default 25 s, so the hold is long here.
    # No request of these tests asks for a hold.
    workspace = ServedWorkspace(
        "edge",
        tmp_path / "served",
        extra_args=["--database-url", database_url, "--long-poll-s", str(REPLAY_HOLD_S)],
    )
    workspace.start()
    database = Database(database_url)
    try:
        api = workspace.client()
        create_listener(api, own_key, remote_key)
        yield ServedLink(workspace, api, database)
        api.client.close()
    finally:
        database.dispose()
        workspace.stop()


def replay_at_once(url: str, sealed: Sealed, times: int) -> collections.Counter[int]:
    """Post ``sealed`` ``times`` times from CONCURRENCY clients at once; count the answers."""

    async def replay() -> list[int]:
        # A few workers, each with requests in turn: a thousand tasks queued on one connection
        # pool would measure httpx's queue instead of the listener.
        remaining = [times]
        codes: list[int] = []
        start = asyncio.Event()
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:

            async def worker() -> None:
                await start.wait()
                while remaining[0] > 0:
                    remaining[0] -= 1
                    answer = await client.post(url, content=sealed.body, headers=sealed.headers)
                    if answer.status_code == 401:
                        assert answer.json() == REJECTED
                    codes.append(answer.status_code)

            workers = [asyncio.ensure_future(worker()) for _ in range(CONCURRENCY)]
            start.set()
            await asyncio.gather(*workers)
        return codes

    return collections.Counter(asyncio.run(replay()))


def test_a_captured_start_replayed_a_thousand_times_at_once_runs_once(
    served_link: ServedLink, remote_key: rsa.RSAPrivateKey
) -> None:
    """All copies race in together: one 200, the rest 401; a later burst changes nothing."""
    url = f"{served_link.workspace.api_url}/sync_config/{LISTENER}/sync"
    captured = seal_as_dialer(remote_key, start_message())
    assert replay_at_once(url, captured, REPLAYS) == {200: 1, 401: REPLAYS - 1}
    assert len(served_link.received()) == 1
    served_link.settle()
    before = store_state(served_link.database)
    assert before["nonces"] == 1

    again = max(REPLAYS // 5, 1)
    assert replay_at_once(url, captured, again) == {401: again}
    assert store_state(served_link.database) == before
    status = served_link.api.ok("GET", f"/sync_config/{LISTENER}/status")
    assert (status["applied_seq"], status["state"]) == (1, "connected")
    assert served_link.workspace.process is not None
    assert served_link.workspace.process.poll() is None, "".join(served_link.workspace.output)


# Requests HTTP itself gets wrong: each is refused or dropped, none is an error of the workspace.
BROKEN_HTTP = {
    "chunks that are not hex": b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "body cut short": b"Content-Length: 1000\r\n\r\n{",
    "chunked, cut short": b"Transfer-Encoding: chunked\r\n\r\n10\r\n{",
    "negative length": b"Content-Length: -1\r\n\r\n",
    "two lengths": b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "header bytes beyond ASCII": b"X-Tether-Signature: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}",
}


def send_raw(port: int, head_and_body: bytes) -> bytes:
    """One request to the sync endpoint over a bare socket; what came back before it closed."""
    request = f"POST /api/latest/sync_config/{LISTENER}/sync HTTP/1.1\r\nHost: edge\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request.encode() + head_and_body)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := connection.recv(65536):
                answer += chunk
        return answer


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # HTTP, not the store
def test_broken_http_to_the_sync_endpoint_is_no_error_of_the_workspace(
    served_link: ServedLink, subtests: Any
) -> None:
    """Malformed framing, cut bodies and odd headers: a 4xx or a closed connection, no traceback."""
    workspace = served_link.workspace
    start = len(workspace.output)
    for case, raw in BROKEN_HTTP.items():
        with subtests.test(case=case):
            seen = len(workspace.output)
            answer = send_raw(workspace.port(), raw)
            status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
            assert status == b"" or status.startswith(b"4"), answer[:300]
            assert served_link.api.ok("GET", "/health")["status"] == "ok"
            logged = "".join(workspace.output[seen:])
            assert "Traceback" not in logged and "ERROR" not in logged, logged
    served_link.api.ok("GET", "/health")
    logged = "".join(workspace.output[start:])
    assert "Traceback" not in logged and "ERROR" not in logged, logged


# --- mutations ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mutant:
    """A changed request: its body, its headers, and what else to try with it.

    ``is_structural``: the JSON was changed, so it is also signed again with a stranger's key.
    ``breaks_a_rule``: even signed with the right key the listener must refuse it.
    """

    kind: str
    body: bytes
    headers: dict[str, str]
    is_structural: bool = False
    breaks_a_rule: bool = False


Pairs = list[tuple[str, Any]]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def render(pairs: Pairs, indent: int | None = None) -> bytes:
    """A JSON object from key-value pairs, keeping their order and any repeated key."""
    separator = ",\n" if indent else ","
    members = separator.join(
        f"{json.dumps(k)}:{json.dumps(v, indent=indent, ensure_ascii=False)}" for k, v in pairs
    )
    return ("{" + members + "}").encode()


def top_level(body: bytes) -> Pairs:
    return list(json.loads(body).items())


def as_dict(pairs: Pairs) -> dict[str, Any]:
    rendered: dict[str, Any] = json.loads(render(pairs))
    return rendered


@st.composite
def byte_mutants(draw: st.DrawFn, captured: Sealed) -> Mutant:
    body = captured.body
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "append", "oversize"]))
    if kind == "flip":
        index = draw(st.integers(0, len(body) - 1))
        mask = draw(st.integers(1, 255))
        changed = body[:index] + bytes([body[index] ^ mask]) + body[index + 1 :]
    elif kind == "truncate":
        changed = body[: draw(st.integers(0, len(body) - 1))]
    elif kind == "insert":
        index = draw(st.integers(0, len(body)))
        changed = body[:index] + draw(st.binary(min_size=1, max_size=16)) + body[index:]
    elif kind == "delete":
        start = draw(st.integers(0, len(body) - 1))
        changed = body[:start] + body[draw(st.integers(start + 1, len(body))) :]
    elif kind == "append":
        changed = body + draw(st.sampled_from([b" ", b"\n", b"\x00", b"{}", b",", b"\xff"]))
    else:
        changed = body[:-1] + b" " * (envelope.MAX_BODY_BYTES + 1) + body[-1:]
    return Mutant(kind, changed, captured.headers)


@st.composite
def structural_mutants(draw: st.DrawFn, captured: Sealed, skew_s: float) -> Mutant:
    pairs = top_level(captured.body)
    keys_ = [k for k, _ in pairs]
    document = as_dict(pairs)
    kind = draw(
        st.sampled_from(
            [
                "reorder",
                "pretty",
                "duplicate",
                "drop",
                "extra",
                "swap names",
                "shift time",
                "change field",
                "reorder messages",
                "repeat message",
                "change message",
                "change hello",
            ]
        )
    )
    breaks_a_rule = False
    if kind == "reorder":
        pairs = draw(st.permutations(pairs))
    elif kind == "pretty":
        body = render(pairs, indent=draw(st.integers(0, 4)))
        return Mutant(kind, body, captured.headers, is_structural=True)
    elif kind == "duplicate":
        key = draw(st.sampled_from(keys_))
        value = document[key] if draw(st.booleans()) else draw(json_values)
        pairs.insert(draw(st.integers(0, len(pairs))), (key, value))
        breaks_a_rule = True
    elif kind == "drop":
        del pairs[draw(st.integers(0, len(pairs) - 1))]
        breaks_a_rule = True
    elif kind == "extra":
        name = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in keys_))
        pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(json_values)))
        breaks_a_rule = True
    elif kind == "swap names":
        document["sender"], document["receiver"] = document["receiver"], document["sender"]
        pairs = list(document.items())
        breaks_a_rule = True
    elif kind == "shift time":
        shift = draw(
            st.floats(-1e7, 1e7, allow_nan=False).filter(lambda s: s != 0)
            | st.sampled_from([1e-6, -1e-6, skew_s + SKEW_MARGIN_S, -(skew_s + 1)])
        )
        document["sent_at"] += shift
        pairs = list(document.items())
        breaks_a_rule = shift < -(skew_s + 1) or shift > skew_s + SKEW_MARGIN_S
    elif kind == "change field":
        key = draw(st.sampled_from(keys_))
        document[key] = draw(field_values(key))
        pairs = list(document.items())
        breaks_a_rule = key in ("protocol", "receiver", "key") and document[key] != as_dict(
            top_level(captured.body)
        ).get(key)
    elif kind in ("reorder messages", "repeat message"):
        messages = document["messages"]
        if kind == "reorder messages":
            document["messages"] = messages[::-1]
        else:
            index = draw(st.integers(0, len(messages) - 1))
            messages.insert(draw(st.integers(0, len(messages))), messages[index])
        pairs = list(document.items())
        breaks_a_rule = True  # sequence numbers must strictly increase
    elif kind == "change message":
        message = draw(st.sampled_from(document["messages"]))
        field = draw(st.sampled_from(["seq", "type", "body", *message["body"]]))
        if field in ("seq", "type", "body"):
            message[field] = draw(json_values)
        else:
            message["body"][field] = draw(json_values)
        pairs = list(document.items())
    else:
        hello = document["hello"]
        hello[draw(st.sampled_from(sorted(hello)))] = draw(json_values)
        pairs = list(document.items())
    return Mutant(kind, render(pairs), captured.headers, True, breaks_a_rule)


def field_values(key: str) -> st.SearchStrategy[Any]:
    """Plausible and implausible values for one top-level field."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "protocol": st.integers(0, 3),
        "sender": st.sampled_from(["hq", "edge", "HQ", "hq2"]),
        "receiver": st.sampled_from(["hq", "edge2", "EDGE", "edge "]),
        "nonce": st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        "ack": st.integers(0, 10**20),
        "reply_to": st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    }
    return plausible.get(key, st.nothing()) | json_values


@st.composite
def header_mutants(draw: st.DrawFn, captured: Sealed, other: Sealed, stranger: str) -> Mutant:
    """The body as captured, its signature or key header changed, dropped or borrowed."""
    headers = dict(captured.headers)
    signature = headers[SIGNATURE]
    kind = draw(
        st.sampled_from(
            [
                "no signature",
                "no key",
                "neither",
                "signature char",
                "signature cut",
                "signature longer",
                "signature respelled",
                "signature of another body",
                "signature any text",
                "stranger's key named",
                "key char",
                "key any text",
            ]
        )
    )
    if kind == "no signature":
        del headers[SIGNATURE]
    elif kind == "no key":
        del headers[KEY]
    elif kind == "neither":
        del headers[SIGNATURE], headers[KEY]
    elif kind == "signature char":
        index = draw(st.integers(0, len(signature.rstrip("=")) - 1))
        char = draw(st.sampled_from(BASE64).filter(lambda c: c != signature[index]))
        headers[SIGNATURE] = signature[:index] + char + signature[index + 1 :]
    elif kind == "signature cut":
        headers[SIGNATURE] = signature[: draw(st.integers(0, len(signature) - 1))]
    elif kind == "signature longer":
        headers[SIGNATURE] = signature + draw(st.text(alphabet=HEADER_TEXT, min_size=1, max_size=8))
    elif kind == "signature respelled":
        # The same 256 bytes, spelled with the last character's 4 unused bits set.
        respelled = BASE64[BASE64.index(signature[-3]) ^ draw(st.integers(1, 15))]
        headers[SIGNATURE] = signature[:-3] + respelled + "=="
        assert base64.b64decode(headers[SIGNATURE]) == base64.b64decode(signature)
    elif kind == "signature of another body":
        headers[SIGNATURE] = other.headers[SIGNATURE]
    elif kind == "signature any text":
        headers[SIGNATURE] = draw(st.text(alphabet=HEADER_TEXT, max_size=400))
    elif kind == "stranger's key named":
        headers[KEY] = stranger
    elif kind == "key char":
        key = headers[KEY]
        index = draw(st.integers(len("SHA256:"), len(key) - 1))
        char = draw(st.sampled_from(BASE64).filter(lambda c: c != key[index]))
        headers[KEY] = key[:index] + char + key[index + 1 :]
    else:
        headers[KEY] = draw(st.text(alphabet=HEADER_TEXT, max_size=60))
    assume(headers != captured.headers)
    return Mutant(kind, captured.body, headers)


def variants(
    mutant: Mutant, captured: Sealed, stranger: rsa.RSAPrivateKey, own: rsa.RSAPrivateKey
) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """The requests to try for one mutant: each must be refused."""
    yield "original signature", mutant.body, mutant.headers
    if mutant.is_structural:
        signed = signed_headers(mutant.body, stranger)
        yield "signed by a stranger", mutant.body, signed
        yield (
            "signed by a stranger, naming the known key",
            mutant.body,
            {
                **signed,
                KEY: captured.headers[KEY],
            },
        )
        if mutant.breaks_a_rule:
            yield "signed with the right key", mutant.body, signed_headers(mutant.body, own)


def assert_each_refused(
    link: Link,
    mutant: Mutant,
    captured: Sealed,
    stranger: rsa.RSAPrivateKey,
    before: dict[str, Any],
) -> None:
    for variant, body, headers in variants(mutant, captured, stranger, link.remote_key):
        answer = link.post(body, headers)
        expected = 413 if len(body) > envelope.MAX_BODY_BYTES else 401
        where = f"{mutant.kind}, {variant}: {body[:300]!r} {headers}"
        assert answer.status_code == expected, f"{where}: {answer.status_code} {answer.text}"
        assert SIGNATURE.lower() not in answer.headers, where
        assert link.state() == before, where


@pytest.fixture
def captured(link: Link) -> Iterator[Sealed]:
    """A request of two starts, sealed by the dialer's code and never delivered, until the end.

    After the mutants it is delivered as captured: it must still be accepted (no mutant used
    up its nonce) and start both executions.
    """
    sealed = link.capture(start_message(1), start_message(2))
    yield sealed
    assert link.post(sealed.body, sealed.headers).status_code == 200
    assert len(link.received()) == 2
    link.settle()


def run_mutants(
    link: Link, captured: Sealed, mutants: st.SearchStrategy[Mutant], stranger: rsa.RSAPrivateKey
) -> None:
    before = link.state()

    @given(mutants)
    def check(mutant: Mutant) -> None:
        assume(mutant.body != captured.body or mutant.headers != captured.headers)
        assert_each_refused(link, mutant, captured, stranger, before)

    check()


def test_mutated_bytes_are_refused_and_change_nothing(
    link: Link, captured: Sealed, stranger_key: rsa.RSAPrivateKey
) -> None:
    """Flipped, cut, inserted, deleted and appended bytes; a body past the size cap is 413."""
    run_mutants(link, captured, byte_mutants(captured), stranger_key)


def test_mutated_json_is_refused_and_changes_nothing(
    link: Link, captured: Sealed, stranger_key: rsa.RSAPrivateKey
) -> None:
    """Reordered, repeated, dropped, extra and changed fields, swapped names, shifted times."""
    run_mutants(link, captured, structural_mutants(captured, link.max_skew_s), stranger_key)


def test_mutated_headers_are_refused_and_change_nothing(
    link: Link, captured: Sealed, stranger_key: rsa.RSAPrivateKey, remote_key: rsa.RSAPrivateKey
) -> None:
    """Missing, damaged, respelled and borrowed signatures; other or damaged key names."""
    other = seal_as_dialer(remote_key, start_message(1))
    stranger = keys.fingerprint(stranger_key.public_key())
    run_mutants(link, captured, header_mutants(captured, other, stranger), stranger_key)


# --- a signed peer that sends nonsense ------------------------------------------------------

# Each start body is wrong in one field (docs/protocol.md: "a malformed body is consumed
# without effect and logged"); PostgreSQL refuses NUL and over-long text that SQLite takes.
MALFORMED_STARTS: dict[str, dict[str, Any]] = {
    "id longer than an id": {"execution_id": "x" * 40},
    "id an object": {"execution_id": {"a": 1}},
    "flow name of 300 characters": {"flow_name": "f" * 300},
    "NUL in the script": {"script": "def handler(system, this):\n    pass\n#\x00"},
    "NUL in the name": {"name": "a\x00b"},
    "input a list": {"input_value": [1, 2]},
    "script a number": {"script": 5},
    "max runtime a word": {"max_runtime_s": "x"},
}


def test_a_signed_start_with_a_malformed_body_is_consumed_without_effect(
    link: Link, subtests: Any
) -> None:
    """Signed by the right key, so it is applied in turn: it creates nothing and never wedges the link."""
    seq = 0
    for case, changes in MALFORMED_STARTS.items():
        with subtests.test(case=case):
            seq += 1
            start = start_message(seq)
            answer = link.post(*link.seal(Message(seq, start.type, {**start.body, **changes})))
            assert answer.status_code == 200, answer.text
            assert (link.applied_seq(), link.received()) == (seq, [])
    follower = start_message(seq + 1)
    assert link.post(*link.seal(follower)).status_code == 200
    assert [e["remote_execution_id"] for e in link.received()] == [follower.body["execution_id"]]
    link.settle()


def test_one_envelope_of_good_and_malformed_starts_applies_the_good_ones_once(
    link: Link,
) -> None:
    """An envelope applies whole at first; a malformed message in it rolls that back, and the
    envelope is applied again message by message: nothing half-applied, nothing twice."""
    messages = []
    for seq in range(1, 6):
        start = start_message(seq)
        if seq in (2, 4):
            start = Message(seq, start.type, {**start.body, "input_value": [seq]})
        messages.append(start)
    answer = link.post(*link.seal(*messages))
    assert answer.status_code == 200, answer.text
    assert link.applied_seq() == 5
    received = sorted(e["remote_execution_id"] for e in link.received())
    assert received == sorted(m.body["execution_id"] for m in messages if m.seq in (1, 3, 5))
    again = link.post(*link.seal(*messages))  # the same messages in a new envelope
    assert again.status_code == 200, again.text
    assert len(link.received()) == 3
    link.settle()


def test_an_update_with_a_bad_log_entry_still_ends_its_execution(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """The end and outputs count even when a log entry beside them cannot be stored: applied
    again carefully, the update's log entries get a savepoint of their own."""
    create_controlling(link.api, own_key, remote_key, "boss")
    link.api.ok("POST", "/flow", json={"name": "quick", "script": QUICK_SCRIPT})
    child = link.api.ok(
        "POST", "/execution", json={"flow_name": "quick", "remote_workspace_name": "boss"}
    )
    now = time.time()
    update = {
        "execution_id": child["id"],
        "remote_id": str(uuid.uuid4()),
        "status": "ENDED_SUCCESS",
        "output_value": {"x": 1},
        "message": "done",
        "started_at": now,
        "ended_at": now,
        "log_offset": 0,
        "log": [[now, "fine", {}], "not an entry"],
    }
    hello = {"workspace": "hq", "role": "controlled", "protocols": [1], "poll_s": 0}
    body, headers = link.seal(Message(1, "execution.update", update), receiver="boss", hello=hello)
    answer = link.post(body, headers, name="boss")
    assert answer.status_code == 200, answer.text
    record = link.api.ok("GET", f"/execution/{child['id']}")
    assert (record["status"], record["output_value"]) == ("ENDED_SUCCESS", {"x": 1}), record
    assert link.api.ok("GET", f"/execution/{child['id']}/log") == []
    assert link.api.ok("GET", "/sync_config/boss/status")["applied_seq"] == 1


# --- what a valid signature must not buy twice, and names no sync config has -----------------


def test_a_first_contact_mismatch_cannot_be_replayed_once_the_link_is_mended(link: Link) -> None:
    """Its nonce counts too: replayed later it is 401, and the mended link stays connected."""
    same_role = {"workspace": "hq", "role": "controlled", "protocols": [1], "poll_s": 0}
    mismatch = link.seal(start_message(1), hello=same_role)
    assert link.post(*mismatch).status_code == 200
    status = link.api.ok("GET", f"/sync_config/{LISTENER}/status")
    assert status["state"] == "failing", status
    assert link.post(*mismatch).status_code == 401

    assert link.post(*link.seal(start_message(1))).status_code == 200
    link.settle()
    before = link.state()
    answer = link.post(*mismatch)
    assert (answer.status_code, answer.json()) == (401, REJECTED)
    assert link.state() == before
    status = link.api.ok("GET", f"/sync_config/{LISTENER}/status")
    assert (status["state"], status["last_error"]) == ("connected", None)


NAMES_NO_CONFIG_HAS = {
    "NUL": "a%00b",
    "newline": "edge%0A",
    "too long": "x" * 101,
    "accent": "%C3%A9dge",
    "emoji": "%F0%9F%98%80",
    "space": "edge%20",
}


def test_a_name_no_sync_config_can_have_gets_the_one_rejection(link: Link, subtests: Any) -> None:
    """Answered as an unknown name is (401), never a store error, whatever the URL holds."""
    body, headers = link.seal(start_message())
    for case, name in NAMES_NO_CONFIG_HAS.items():
        with subtests.test(case=case):
            before = link.state()
            answer = link.post(body, headers, name=name)
            assert (answer.status_code, answer.json()) == (401, REJECTED)
            assert link.state() == before


def test_a_sync_config_name_ending_in_a_newline_is_refused(api: ApiClient) -> None:
    """Python's `$` matches before a final newline: the name check must not."""
    answer = api.post("/sync_config", json={"name": "edge\n"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_sync_config"
    url = "https://hub.example/api/latest/sync_config/edge/sync\n"
    answer = api.post("/sync_config", json={"name": "edge", "remote_url": url})
    assert answer.status_code == 400, answer.text
