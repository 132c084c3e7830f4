"""`tether keygen PATH` as an operator runs it, and the keys other tools make, read by tether."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tether.link import keys


def keygen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether.cli", "keygen", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("bits", [None, "2048"])
def test_keygen_writes_a_private_key_and_its_public_key(tmp_path: Path, bits: str | None) -> None:
    """PATH is 0600, PATH.pub is beside it, both load, and the printed fingerprint is theirs."""
    os.chmod(tmp_path, 0o755)
    done = keygen("edge.pem", *(["--bits", bits] if bits else []), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    private_path, public_path = tmp_path / "edge.pem", tmp_path / "edge.pem.pub"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    private = keys.load_private_key(private_path.read_text())
    public = keys.load_public_key(public_path.read_text())
    assert private.key_size == int(bits or 3072)
    assert keys.fingerprint(private.public_key()) == keys.fingerprint(public)
    assert f"fingerprint: {keys.fingerprint(public)}" in done.stdout
    assert public_path.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE KEY" not in public_path.read_text() + done.stdout


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    for existing in ("edge.pem", "edge.pem.pub"):
        target = tmp_path / existing
        target.write_text("what was here before")
        done = keygen("edge.pem", "--bits", "2048", cwd=tmp_path)
        assert done.returncode != 0
        assert f"{existing} exists" in done.stderr and "Traceback" not in done.stderr
        assert target.read_text() == "what was here before"
        target.unlink()
        assert list(tmp_path.iterdir()) == []


def test_keygen_refuses_short_keys_and_unwritable_paths(tmp_path: Path) -> None:
    done = keygen("edge.pem", "--bits", "1024", cwd=tmp_path)
    assert done.returncode != 0
    assert "2048 bits or more" in done.stderr and "Traceback" not in done.stderr
    done = keygen(str(tmp_path / "missing" / "edge.pem"), "--bits", "2048", cwd=tmp_path)
    assert done.returncode != 0
    assert "cannot write" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def run_tool(*command: str, cwd: Path) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=60)


def test_keys_from_openssl_and_ssh_keygen_load(tmp_path: Path) -> None:
    """`openssl genrsa` (PKCS#1), `openssl genpkey` (PKCS#8) and an ssh-keygen .pub line."""
    # OpenSSL 3 writes PKCS#8 unless told -traditional; 1.1 writes PKCS#1 and lacks the flag.
    try:
        run_tool("openssl", "genrsa", "-traditional", "-out", "pkcs1.pem", "2048", cwd=tmp_path)
    except subprocess.CalledProcessError:
        run_tool("openssl", "genrsa", "-out", "pkcs1.pem", "2048", cwd=tmp_path)
    run_tool(
        "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
        "-out", "pkcs8.pem", cwd=tmp_path,
    )  # fmt: skip
    run_tool("openssl", "rsa", "-in", "pkcs1.pem", "-pubout", "-out", "pkcs1.pub", cwd=tmp_path)
    run_tool("ssh-keygen", "-t", "rsa", "-b", "2048", "-N", "", "-f", "id_rsa", cwd=tmp_path)

    pkcs1 = keys.load_private_key((tmp_path / "pkcs1.pem").read_text())
    pkcs8 = keys.load_private_key((tmp_path / "pkcs8.pem").read_text())
    assert (tmp_path / "pkcs1.pem").read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert pkcs8.key_size == 2048
    from_openssl = keys.load_public_key((tmp_path / "pkcs1.pub").read_text())
    assert keys.fingerprint(from_openssl) == keys.fingerprint(pkcs1.public_key())
    ssh_public = keys.load_public_key((tmp_path / "id_rsa.pub").read_text())
    assert ssh_public.key_size == 2048
