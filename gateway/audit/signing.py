"""Ed25519 keys for audit anchors and checkpoints: what proves a head to an outsider.

The private key lives outside the audit store (a file, or an environment variable holding
the PEM or the 32-byte seed in hex): whoever can write the database cannot sign, so a head
signed earlier refutes a chain rewritten later, however carefully its hashes are recomputed.
An auditor needs only the public key (PEM, or 32 bytes in hex).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit.schema import canonical_json


class SigningKeyError(ValueError):
    """A key that cannot be read: a configuration error, reported without the key itself."""


def _private_from(text: bytes) -> Ed25519PrivateKey:
    text = text.strip()
    if text.startswith(b"-----"):
        key = serialization.load_pem_private_key(text, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError("the audit signing key is not an Ed25519 key")
        return key
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text.decode("ascii")))
    except ValueError:
        raise SigningKeyError("the audit signing key is neither PEM nor a 32-byte hex seed") from None


def load_private_key(path: Path | None = None, env: str | None = None) -> Ed25519PrivateKey | None:
    """The signing key from ``path`` or from the environment variable ``env`` (None: unsigned)."""
    if path is not None:
        return _private_from(Path(path).read_bytes())
    if env and (value := os.environ.get(env)):
        return _private_from(value.encode("utf-8"))
    return None


def load_public_key(spec: str) -> Ed25519PublicKey:
    """A public key from a PEM file path, PEM text, or 32 bytes in hex."""
    raw = spec.strip().encode("utf-8")
    if not raw.startswith(b"-----") and Path(spec).is_file():
        raw = Path(spec).read_bytes().strip()
    if raw.startswith(b"-----"):
        key = serialization.load_pem_public_key(raw)
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError("the audit public key is not an Ed25519 key")
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw.decode("ascii")))
    except ValueError:
        raise SigningKeyError("the audit public key is neither PEM, a PEM file nor 32 bytes in hex") from None


def public_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def sign(key: Ed25519PrivateKey, payload: dict[str, object]) -> str:
    """Hex signature over the payload's canonical JSON (sorted keys, compact)."""
    return key.sign(canonical_json(payload)).hex()


def valid(key: Ed25519PublicKey, payload: dict[str, object], signature: object) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        key.verify(bytes.fromhex(signature), canonical_json(payload))
    except (InvalidSignature, ValueError):
        return False
    return True
