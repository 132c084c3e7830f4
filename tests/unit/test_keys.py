"""Link keys: the formats admins paste, the errors that guide them, fingerprints, storage."""

from __future__ import annotations

import base64
import datetime
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from tether import errors
from tether.link import keys

SECRET = b"workspace secret of 32 bytes...."


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def small_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def private_text(
    key: PrivateKeyTypes, fmt: serialization.PrivateFormat, password: bytes | None = None
) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode()


def public_text(
    public_key: PublicKeyTypes, encoding: serialization.Encoding, fmt: serialization.PublicFormat
) -> str:
    return public_key.public_bytes(encoding, fmt).decode()


def spki_pem(key: rsa.RSAPrivateKey) -> str:
    return public_text(
        key.public_key(),
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def pkcs1_public_pem(key: rsa.RSAPrivateKey) -> str:
    return public_text(
        key.public_key(), serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )


def openssh_line(key: rsa.RSAPrivateKey, comment: str = "admin@edge") -> str:
    line = public_text(
        key.public_key(), serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{line} {comment}\n"


def detail_of(excinfo: pytest.ExceptionInfo[errors.InvalidKey]) -> str:
    return str(excinfo.value.fields["detail"])


def same_key(a: rsa.RSAPrivateKey | rsa.RSAPublicKey, b: rsa.RSAPrivateKey) -> bool:
    public = a.public_key() if isinstance(a, rsa.RSAPrivateKey) else a
    return public.public_numbers() == b.public_key().public_numbers()


# generate


def test_generate_private_key_makes_an_rsa_key_of_the_requested_bits() -> None:
    assert keys.generate_private_key(bits=2048).key_size == 2048


def test_generate_private_key_defaults_to_3072_bits() -> None:
    assert keys.generate_private_key().key_size == 3072


# load_private_key: accepted formats


def test_load_private_key_reads_pkcs1_as_openssl_genrsa_writes(key: rsa.RSAPrivateKey) -> None:
    text = private_text(key, serialization.PrivateFormat.TraditionalOpenSSL)
    assert text.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert same_key(keys.load_private_key(text), key)


def test_load_private_key_reads_pkcs8_as_openssl_genpkey_writes(key: rsa.RSAPrivateKey) -> None:
    text = private_text(key, serialization.PrivateFormat.PKCS8)
    assert text.startswith("-----BEGIN PRIVATE KEY-----")
    assert same_key(keys.load_private_key(text), key)


def test_load_private_key_ignores_surrounding_whitespace_and_text(key: rsa.RSAPrivateKey) -> None:
    text = "\n  my key:\n" + private_text(key, serialization.PrivateFormat.PKCS8) + "\n\n"
    assert same_key(keys.load_private_key(text), key)


# load_private_key: errors


def test_load_private_key_rejects_text_that_is_not_pem() -> None:
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key("hunter2")
    assert "not a PEM private key" in detail_of(excinfo)


def test_load_private_key_error_names_the_field_and_starts_with_it() -> None:
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key("", field="signing key")
    assert excinfo.value.fields["field"] == "signing key"
    assert excinfo.value.message.startswith("signing key is not usable: ")


def test_load_private_key_default_field_is_own_private_key() -> None:
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key("nope")
    assert excinfo.value.fields["field"] == "own_private_key"


def test_load_private_key_rejects_a_cut_off_pem_block(key: rsa.RSAPrivateKey) -> None:
    text = private_text(key, serialization.PrivateFormat.PKCS8)
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(text[: len(text) // 2])
    assert "cut off" in detail_of(excinfo)


def test_load_private_key_rejects_a_damaged_pem_body() -> None:
    text = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(text)
    assert "damaged" in detail_of(excinfo)


@pytest.mark.parametrize("form", ["spki", "pkcs1", "openssh"])
def test_load_private_key_tells_that_a_public_key_was_pasted(
    key: rsa.RSAPrivateKey, form: str
) -> None:
    text = {"spki": spki_pem, "pkcs1": pkcs1_public_pem, "openssh": openssh_line}[form](key)
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(text)
    assert detail_of(excinfo) == (
        "this is a public key; paste this side's private key here, "
        "and give the public key to the other side"
    )


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_load_private_key_rejects_an_ec_key_naming_its_algorithm(
    fmt: serialization.PrivateFormat,
) -> None:
    text = private_text(ec.generate_private_key(ec.SECP256R1()), fmt)
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(text)
    assert "algorithm is EC, not RSA" in detail_of(excinfo)
    assert "tether keygen" in detail_of(excinfo)


def test_load_private_key_rejects_an_ed25519_key() -> None:
    text = private_text(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8)
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(text)
    assert "algorithm is Ed25519, not RSA" in detail_of(excinfo)


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_load_private_key_tells_how_to_decrypt_an_encrypted_key(
    key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat
) -> None:
    text = private_text(key, fmt, password=b"passphrase")
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(text)
    assert "encrypted" in detail_of(excinfo)
    assert "openssl pkey -in k.pem -out k2.pem" in detail_of(excinfo)


def test_load_private_key_rejects_fewer_than_2048_bits_saying_how_many(
    small_key: rsa.RSAPrivateKey,
) -> None:
    text = private_text(small_key, serialization.PrivateFormat.PKCS8)
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(text)
    assert "it has 1024 bits" in detail_of(excinfo)
    assert "tether keygen" in detail_of(excinfo)


def test_load_private_key_tells_how_to_convert_an_openssh_private_key(
    key: rsa.RSAPrivateKey,
) -> None:
    text = private_text(key, serialization.PrivateFormat.OpenSSH)
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(text)
    assert "ssh-keygen -p -m PEM" in detail_of(excinfo)


# load_public_key: accepted formats


def test_load_public_key_reads_subject_public_key_info_pem(key: rsa.RSAPrivateKey) -> None:
    assert same_key(keys.load_public_key(spki_pem(key)), key)


def test_load_public_key_reads_pkcs1_public_pem(key: rsa.RSAPrivateKey) -> None:
    text = pkcs1_public_pem(key)
    assert text.startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert same_key(keys.load_public_key(text), key)


def test_load_public_key_reads_an_openssh_line_with_comment(key: rsa.RSAPrivateKey) -> None:
    assert same_key(keys.load_public_key(openssh_line(key)), key)


def test_load_public_key_reads_an_openssh_line_without_comment(key: rsa.RSAPrivateKey) -> None:
    assert same_key(keys.load_public_key(openssh_line(key, comment="").strip()), key)


# load_public_key: errors


def test_load_public_key_rejects_text_that_is_not_a_key() -> None:
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key("AAAAB3NzaC1yc2E")
    assert "not a PEM or OpenSSH public key" in detail_of(excinfo)
    assert excinfo.value.fields["field"] == "remote_public_key"


@pytest.mark.parametrize(
    "fmt",
    [
        serialization.PrivateFormat.PKCS8,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.PrivateFormat.OpenSSH,
    ],
)
def test_load_public_key_warns_that_a_private_key_was_pasted(
    key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat
) -> None:
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key(private_text(key, fmt))
    assert detail_of(excinfo) == (
        "this is a private key: never share it; paste the other side's public key"
    )


def test_load_public_key_rejects_an_ec_pem_key() -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    text = public_text(
        public, serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key(text)
    assert "algorithm is EC, not RSA" in detail_of(excinfo)


def test_load_public_key_rejects_an_ssh_ed25519_line() -> None:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    text = public_text(public, serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key(text + " me@host")
    assert "algorithm is ssh-ed25519, not RSA" in detail_of(excinfo)
    assert "ssh-keygen -t rsa" in detail_of(excinfo)


def test_load_public_key_rejects_a_damaged_ssh_rsa_line() -> None:
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key("ssh-rsa AAAAnotbase64!! me@host")
    assert "damaged" in detail_of(excinfo)


def test_load_public_key_rejects_several_ssh_lines(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key(openssh_line(key) + openssh_line(other_key))
    assert "several lines" in detail_of(excinfo)


def test_load_public_key_tells_how_to_convert_an_ssh2_public_key() -> None:
    text = '---- BEGIN SSH2 PUBLIC KEY ----\nComment: "x"\nAAAA\n---- END SSH2 PUBLIC KEY ----'
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key(text)
    assert "ssh-keygen -i -f key.pub" in detail_of(excinfo)


def test_load_public_key_tells_how_to_extract_the_key_of_a_certificate(
    key: rsa.RSAPrivateKey,
) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    text = certificate.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key(text)
    assert "certificate" in detail_of(excinfo)
    assert "openssl x509" in detail_of(excinfo)


def test_load_public_key_rejects_fewer_than_2048_bits_saying_how_many(
    small_key: rsa.RSAPrivateKey,
) -> None:
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_public_key(openssh_line(small_key))
    assert "it has 1024 bits" in detail_of(excinfo)


# fingerprint and PEM output


def test_fingerprint_is_unpadded_base64_of_sha256_of_der_public_key(
    key: rsa.RSAPrivateKey,
) -> None:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert keys.fingerprint(key.public_key()) == "SHA256:" + expected
    assert "=" not in keys.fingerprint(key.public_key())


def test_fingerprint_is_the_same_for_every_format_of_one_key(key: rsa.RSAPrivateKey) -> None:
    loaded = [
        keys.load_public_key(spki_pem(key)),
        keys.load_public_key(pkcs1_public_pem(key)),
        keys.load_public_key(openssh_line(key)),
        keys.load_private_key(private_text(key, serialization.PrivateFormat.PKCS8)).public_key(),
        keys.load_private_key(
            private_text(key, serialization.PrivateFormat.TraditionalOpenSSL)
        ).public_key(),
    ]
    assert {keys.fingerprint(public) for public in loaded} == {keys.fingerprint(key.public_key())}


def test_fingerprint_differs_between_keys(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    assert keys.fingerprint(key.public_key()) != keys.fingerprint(other_key.public_key())


def test_public_pem_is_the_same_from_private_and_public_key(key: rsa.RSAPrivateKey) -> None:
    text = keys.public_pem(key)
    assert text.startswith("-----BEGIN PUBLIC KEY-----")
    assert keys.public_pem(key.public_key()) == text
    assert same_key(keys.load_public_key(text), key)


def test_private_pem_is_unencrypted_pkcs8_that_loads_back(key: rsa.RSAPrivateKey) -> None:
    text = keys.private_pem(key)
    assert text.startswith("-----BEGIN PRIVATE KEY-----")
    assert same_key(keys.load_private_key(text), key)


# at-rest encryption


def test_decrypt_with_secret_returns_what_was_encrypted(key: rsa.RSAPrivateKey) -> None:
    pem = keys.private_pem(key)
    token = keys.encrypt_with_secret(SECRET, pem)
    assert "PRIVATE KEY" not in token
    assert keys.decrypt_with_secret(SECRET, token) == pem


def test_encrypt_with_secret_is_fernet_keyed_by_hkdf_sha256_of_the_secret() -> None:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tether private keys")
    fernet = Fernet(base64.urlsafe_b64encode(hkdf.derive(SECRET)))
    assert fernet.decrypt(keys.encrypt_with_secret(SECRET, "pem")) == b"pem"


def test_decrypt_with_another_secret_says_the_secret_may_have_been_replaced() -> None:
    token = keys.encrypt_with_secret(SECRET, "pem")
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.decrypt_with_secret(b"another secret", token)
    assert excinfo.value.fields["field"] == "stored key"
    assert "was the secret file replaced?" in detail_of(excinfo)


def test_decrypt_with_secret_rejects_a_tampered_token() -> None:
    token = keys.encrypt_with_secret(SECRET, "pem")
    tampered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    with pytest.raises(errors.InvalidKey):
        keys.decrypt_with_secret(SECRET, tampered)


# real tools, when installed


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl on PATH")
needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="no ssh-keygen on PATH"
)


@needs_openssl
@pytest.mark.parametrize(
    "command",
    [
        ["openssl", "genrsa", "-out", "{path}", "2048"],
        ["openssl", "genrsa", "-traditional", "-out", "{path}", "2048"],
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "{path}",
        ],
    ],
    ids=["genrsa", "genrsa-traditional", "genpkey"],
)
def test_load_private_key_reads_keys_written_by_openssl(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "k.pem"
    try:
        run(*(part.format(path=path) for part in command))
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"this openssl does not support {command}: {exc.stderr}")
    assert keys.load_private_key(path.read_text()).key_size == 2048


@needs_openssl
def test_fingerprint_matches_openssl_and_both_openssl_public_formats_load(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    run(
        "openssl",
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        str(path),
    )
    spki = run("openssl", "pkey", "-in", str(path), "-pubout")
    pkcs1 = run("openssl", "rsa", "-in", str(path), "-RSAPublicKey_out")
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert keys.fingerprint(keys.load_public_key(spki)) == expected
    assert keys.fingerprint(keys.load_public_key(pkcs1)) == expected


@needs_ssh_keygen
def test_load_public_key_reads_ssh_keygen_id_rsa_pub_with_its_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "id_rsa"
    run(
        "ssh-keygen",
        "-q",
        "-t",
        "rsa",
        "-b",
        "2048",
        "-m",
        "PEM",
        "-N",
        "",
        "-C",
        "me@host",
        "-f",
        str(path),
    )
    private = keys.load_private_key(path.read_text())
    public = keys.load_public_key((tmp_path / "id_rsa.pub").read_text())
    assert keys.fingerprint(public) == keys.fingerprint(private.public_key())


@needs_ssh_keygen
def test_load_private_key_explains_ssh_keygen_default_format(tmp_path: Path) -> None:
    path = tmp_path / "id_rsa"
    run("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(path))
    with pytest.raises(errors.InvalidKey) as excinfo:
        keys.load_private_key(path.read_text())
    assert "ssh-keygen -p -m PEM" in detail_of(excinfo)
