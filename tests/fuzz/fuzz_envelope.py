"""Coverage-guided fuzzing of the link's envelope verifier and parser, with atheris (libFuzzer).

    pip install atheris
    python tests/fuzz/fuzz_envelope.py -max_total_time=60

Each input is one request as the listener sees it: a first byte picks how it is signed
(not at all, with text the fuzzer writes, or validly, so that the parser behind the
signature is explored too), then the body. ``protocol.open_``, ``envelope.decode`` and
``envelope.check`` may only return or raise EnvelopeRejected; an envelope that parses must
encode back to one that parses the same. Anything else is a crash, and libFuzzer keeps the
input that caused it. Without corpus directories on the command line, the run starts from
seeds in a temporary directory and leaves nothing behind but a crash's input, if any
(libFuzzer's -artifact_prefix says where).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["tether"]):
    from tether import errors
    from tether.actions.context import Context
    from tether.link import envelope, keys, protocol
    from tether.store.sync_configs import SyncConfig

NOW = 1_700_000_000.0
RECEIVER = "edge"
UNSIGNED, TEXT_SIGNED, SIGNED = 0, 1, 2
KEY = keys.generate_private_key(2048)
FINGERPRINT = keys.fingerprint(KEY.public_key())
CONFIG = SyncConfig(
    name=RECEIVER,
    is_enabled=True,
    remote_url=None,
    role="controlled",
    ca_certificate=None,
    verify_ssl=True,
    own_private_key=None,
    next_own_private_key=None,
    remote_public_keys=[keys.public_pem(KEY)],
    send_all_executions=False,
    sync_interval_s=None,
    accepted_scripts=None,
    run_as=None,
    allow_onward_remote=False,
    max_running=None,
    proxy_url=None,
    created_at=NOW,
    updated_at=NOW,
)
CTX = Context(db=None, events=None, workspace_name=RECEIVER, clock=lambda: NOW)  # type: ignore[arg-type]
RING = protocol.KeyRing(CTX)


def request(data: bytes) -> tuple[bytes, dict[str, str]]:
    """The body and headers one input stands for."""
    if not data:
        return b"", {}
    mode, rest = data[0] % 3, data[1:]
    if mode == SIGNED:
        return rest, {
            envelope.SIGNATURE_HEADER: envelope.sign(KEY, rest),
            envelope.KEY_HEADER: FINGERPRINT,
        }
    if mode == TEXT_SIGNED:
        provider = atheris.FuzzedDataProvider(rest)
        signature = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 400))
        fingerprint = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 60))
        headers = {envelope.SIGNATURE_HEADER: signature, envelope.KEY_HEADER: fingerprint}
        return provider.ConsumeBytes(len(rest)), headers
    return rest, {}


def test_one_input(data: bytes) -> None:
    body, headers = request(data)
    try:
        opened = protocol.open_(CTX, RING, CONFIG, body, headers, receiver=RECEIVER, max_skew_s=300)
    except errors.EnvelopeRejected:
        opened = None
    try:
        parsed = envelope.decode(body)
    except errors.EnvelopeRejected:
        assert opened is None, "open_ accepted what decode rejects"
        return
    assert envelope.decode(envelope.encode(parsed)) == parsed, "an envelope does not survive encode"
    protocol.hello_problem(CONFIG, parsed.hello)
    try:
        envelope.check(
            parsed, receiver=RECEIVER, key_fingerprint=FINGERPRINT, now=NOW, max_skew_s=300
        )
    except errors.EnvelopeRejected:
        assert opened is None, "open_ accepted what check rejects"


def seeds() -> list[bytes]:
    """Valid request bodies, one per way of signing, to start the search from."""
    valid = envelope.Envelope(
        protocol=envelope.PROTOCOL_VERSION,
        sender="hq",
        receiver=RECEIVER,
        key=FINGERPRINT,
        nonce="0123456789abcdef0123456789abcdef",
        sent_at=NOW,
        ack=3,
        messages=(
            envelope.Message(4, "execution.start", {"execution_id": "x", "input_value": {"a": 1}}),
            envelope.Message(5, "execution.cancel", {"execution_id": "x"}),
        ),
        reply_to="ab" * 32,
        hello={"workspace": "hq", "role": "controlling", "protocols": [1], "poll_s": 25.0},
    )
    bodies = [envelope.encode(valid), envelope.encode(dataclasses.replace(valid, hello=None))]
    return [bytes([mode]) + body for body in bodies for mode in (UNSIGNED, TEXT_SIGNED, SIGNED)]


# Tokens libFuzzer splices into inputs: JSON's odd corners (numbers beyond a float, escaped
# surrogates and NUL, huge integers, deep nesting) and the envelope's own words.
DICTIONARY = [
    r"1e400",
    r"-1e999",
    r"NaN",
    r"Infinity",
    r"9223372036854775808",
    r"-0.0",
    r"\\ud800",
    r"\\udfff",
    r"\\u0000",
    r"[[[[[[[[",
    r"{\"a\":{\"a\":",
    r"\"protocol\":",
    r"\"sender\":",
    r"\"receiver\":",
    r"\"key\":",
    r"\"nonce\":",
    r"\"sent_at\":",
    r"\"ack\":",
    r"\"messages\":",
    r"\"reply_to\":",
    r"\"hello\":",
    r"\"seq\":",
    r"\"type\":",
    r"\"body\":",
    r"\"workspace\":",
    r"\"role\":",
    r"\"protocols\":",
    r"\"poll_s\":",
    r"\"execution.start\"",
    r"\"controlling\"",
    r"\"controlled\"",
    r"true",
    r"null",
]


def main() -> int:
    if any(not arg.startswith("-") for arg in sys.argv[1:]):
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()  # ends the process
    # No corpus named: fuzz from the seeds in a temporary corpus, in a child process, since
    # libFuzzer ends its process without running Python's clean-up.
    corpus = Path(tempfile.mkdtemp(prefix="tether-fuzz-corpus-"))
    try:
        for index, seed in enumerate(seeds()):
            (corpus / f"seed-{index}").write_bytes(seed)
        options = list(sys.argv[1:])
        if not any(arg.startswith("-dict=") for arg in options):
            dictionary = corpus.with_name(corpus.name + ".dict")
            dictionary.write_text("".join(f'"{token}"\n' for token in DICTIONARY))
            options.append(f"-dict={dictionary}")
        command = [sys.executable, __file__, *options, str(corpus)]
        return subprocess.run(command, check=False).returncode
    finally:
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.with_name(corpus.name + ".dict").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
