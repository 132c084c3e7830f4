"""RSA keys for links: generate, parse what admins paste, fingerprint, encrypt at rest.

Pure functions over text and bytes; no files, no database.
"""

from __future__ import annotations

import base64
import hashlib
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tether import errors

MIN_BITS = 2048
_HKDF_INFO = b"tether private keys"
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
_SSH_LINE = re.compile(r"(ssh-[a-z0-9-]+|ecdsa-sha2-\S+|sk-\S+)\s")
# Labels load_pem_private_key reads: encrypted and non-RSA keys are loaded so that the
# loader's answer (TypeError, or the key's type) tells exactly what is wrong.
_PRIVATE_LABELS = frozenset(
    {"PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY"}
)
_PUBLIC_LABELS = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY"})
_OTHER_KINDS = (
    ((ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey), "EC"),
    ((ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey), "Ed25519"),
    ((ed448.Ed448PrivateKey, ed448.Ed448PublicKey), "Ed448"),
    ((dsa.DSAPrivateKey, dsa.DSAPublicKey), "DSA"),
)

_NOT_PEM_PRIVATE = (
    "it is not a PEM private key: paste the whole key file, from '-----BEGIN' to '-----END', "
    "as written by `tether keygen PATH` or `openssl genpkey -algorithm RSA`"
)
_NOT_PEM_PUBLIC = (
    "it is not a PEM or OpenSSH public key: paste the other side's public key file "
    "(PATH.pub from `tether keygen`, or the one line of an ssh-keygen id_rsa.pub)"
)
_PUBLIC_PASTED = (
    "this is a public key; paste this side's private key here, "
    "and give the public key to the other side"
)
_PRIVATE_PASTED = "this is a private key: never share it; paste the other side's public key"
_ENCRYPTED = (
    "it is encrypted with a passphrase: decrypt it with "
    "`openssl pkey -in k.pem -out k2.pem` and paste k2.pem"
)
_OPENSSH_PRIVATE = (
    "it is in OpenSSH's own private key format: convert a copy to PEM with "
    "`ssh-keygen -p -m PEM -f COPY_OF_id_rsa` and paste that"
)
_SSH2_PUBLIC = (
    "it is in the SSH2 (RFC 4716) format: convert it with `ssh-keygen -i -f key.pub` "
    "and paste the ssh-rsa line"
)
_CERTIFICATE = (
    "this is a certificate, not a key: paste the other side's public key "
    "(`openssl x509 -in cert.pem -pubkey -noout` extracts it)"
)


def generate_private_key(bits: int = 3072) -> rsa.RSAPrivateKey:
    """Generate a new RSA private key of ``bits`` bits."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def load_private_key(
    text: str, field: str = "own_private_key", *, is_checked: bool = False
) -> rsa.RSAPrivateKey:
    """Parse an unencrypted RSA private key from PEM (PKCS#1 or PKCS#8).

    ``is_checked`` skips the RSA consistency check (100 ms at 2048 bits, 400 ms at 3072)
    for a key that passed it when it was stored and comes back from the workspace's own
    authenticated encryption.

    Raises:
        errors.InvalidKey: the text is not such a key; the detail says what it is instead.
    """
    block = _private_block(text, field)
    try:
        key = serialization.load_pem_private_key(
            block.encode(), password=None, unsafe_skip_rsa_key_validation=is_checked
        )
    except TypeError as exc:  # cryptography's answer to an encrypted key without password
        raise _invalid(field, _ENCRYPTED) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _invalid(field, _damaged("private key")) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _invalid(field, _not_rsa(key, "`tether keygen PATH`"))
    _check_size(key.key_size, field, "make a new key with `tether keygen PATH` (3072 bits)")
    return key


def load_public_key(text: str, field: str = "remote_public_key") -> rsa.RSAPublicKey:
    """Parse an RSA public key from PEM (SubjectPublicKeyInfo or PKCS#1) or an OpenSSH line.

    Raises:
        errors.InvalidKey: the text is not such a key; the detail says what it is instead.
    """
    stripped = text.strip()
    if _SSH_LINE.match(stripped):
        key = _load_ssh_public(stripped, field)
    else:
        key = _load_pem_public(stripped, field)
    _check_size(key.key_size, field, "ask the other side for a new one from `tether keygen PATH`")
    return key


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """The key's fingerprint: 'SHA256:' and unpadded base64 of its DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """The SubjectPublicKeyInfo PEM of a key or of a private key's public half."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """The unencrypted PKCS#8 PEM of a private key."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii")


def encrypt_with_secret(secret: bytes, plaintext: str) -> str:
    """Encrypt ``plaintext`` (a private key PEM) for storage under the workspace secret."""
    return _fernet(secret).encrypt(plaintext.encode()).decode("ascii")


def decrypt_with_secret(secret: bytes, token: str) -> str:
    """Decrypt what ``encrypt_with_secret`` stored under the workspace secret.

    Raises:
        errors.InvalidKey: the secret is not the one the token was made with, or the token is damaged.
    """
    try:
        return _fernet(secret).decrypt(token).decode()
    except (InvalidToken, ValueError) as exc:  # ValueError: a token with non-ASCII characters
        raise errors.InvalidKey(
            field="stored key",
            detail="it cannot be decrypted with this workspace's secret: was the secret file replaced?",
        ) from exc


def _fernet(secret: bytes) -> Fernet:
    """A Fernet keyed by HKDF-SHA256 over the workspace secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret)))


def _private_block(text: str, field: str) -> str:
    """The PEM block of ``text`` that should hold a private key, or a helpful InvalidKey."""
    stripped = text.strip()
    if _SSH_LINE.match(stripped):
        raise _invalid(field, _PUBLIC_PASTED)
    label, block = _first_block(stripped, field, _NOT_PEM_PRIVATE)
    if label in _PUBLIC_LABELS:
        raise _invalid(field, _PUBLIC_PASTED)
    if label == "OPENSSH PRIVATE KEY":
        raise _invalid(field, _OPENSSH_PRIVATE)
    if label not in _PRIVATE_LABELS:
        raise _invalid(field, f"it holds a '{label}' block, not a private key: {_NOT_PEM_PRIVATE}")
    return block


def _load_pem_public(stripped: str, field: str) -> rsa.RSAPublicKey:
    """Parse a PEM public key, or raise a helpful InvalidKey for what was pasted instead."""
    if "BEGIN SSH2 PUBLIC KEY" in stripped:
        raise _invalid(field, _SSH2_PUBLIC)
    label, block = _first_block(stripped, field, _NOT_PEM_PUBLIC)
    if label.endswith("PRIVATE KEY"):
        raise _invalid(field, _PRIVATE_PASTED)
    if label == "CERTIFICATE":
        raise _invalid(field, _CERTIFICATE)
    if label not in _PUBLIC_LABELS:
        raise _invalid(field, f"it holds a '{label}' block, not a public key: {_NOT_PEM_PUBLIC}")
    try:
        key = serialization.load_pem_public_key(block.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _invalid(field, _damaged("public key")) from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise _invalid(field, _not_rsa(key, "`tether keygen PATH` on the other side"))
    return key


def _load_ssh_public(stripped: str, field: str) -> rsa.RSAPublicKey:
    """Parse one OpenSSH 'ssh-rsa AAAA... comment' line."""
    if "\n" in stripped:
        raise _invalid(field, "it holds several lines: paste the one line of a single .pub file")
    words = stripped.split()
    if words[0] != "ssh-rsa":
        raise _invalid(
            field,
            f"its algorithm is {words[0]}, not RSA: make an RSA key with "
            "`ssh-keygen -t rsa -b 3072` or `tether keygen PATH`",
        )
    try:
        key = serialization.load_ssh_public_key(f"ssh-rsa {words[1]}".encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _invalid(field, _damaged("ssh-rsa line")) from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise _invalid(field, _damaged("ssh-rsa line"))
    return key


def _first_block(stripped: str, field: str, not_pem: str) -> tuple[str, str]:
    """The label and text of the first PEM block, or InvalidKey with ``not_pem``."""
    match = _PEM_BLOCK.search(stripped)
    if match is not None:
        return match.group(1), match.group(0)
    if "-----BEGIN " in stripped:
        raise _invalid(
            field, "the PEM block is cut off: paste everything through the '-----END' line"
        )
    raise _invalid(field, not_pem)


def _check_size(bits: int, field: str, remedy: str) -> None:
    """Refuse keys shorter than MIN_BITS."""
    if bits < MIN_BITS:
        raise _invalid(field, f"it has {bits} bits, fewer than the {MIN_BITS} required: {remedy}")


def _not_rsa(key: object, maker: str) -> str:
    """The detail for a well-formed key of another algorithm."""
    kind = next(
        (name for types, name in _OTHER_KINDS if isinstance(key, types)), type(key).__name__
    )
    return f"its algorithm is {kind}, not RSA: make an RSA key with {maker}"


def _damaged(what: str) -> str:
    """The detail for text that looks like a key but does not parse."""
    return f"the {what} is damaged and cannot be read: paste the whole file again, unchanged"


def _invalid(field: str, detail: str) -> errors.InvalidKey:
    """An InvalidKey for ``field``."""
    return errors.InvalidKey(field=field, detail=detail)
