"""Envelope encryption (AES-256-GCM) and keyed fingerprints.

Used by the builtin store for every value it keeps, and by anything that stages a value
on disk. Fingerprints are HMAC-SHA256 under a key the plan reader does not have, so a
committed plan reveals nothing about values and allows no guessing of short ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
FINGERPRINT_PREFIX = "hmac-sha256:"


class WrongKey(Exception):
    """Authenticated decryption failed: wrong key, or the data was altered."""


def new_key() -> bytes:
    """32 fresh random bytes, for a master key or a data key."""
    return os.urandom(KEY_BYTES)


def decode_key(text: str | bytes, origin: str) -> bytes:
    """Decode a base64 master key; `origin` names where it came from, for the error."""
    try:
        raw = base64.b64decode(text.strip() if isinstance(text, str) else text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the key from {origin} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"the key from {origin} must be {KEY_BYTES} bytes (base64), not {len(raw)}")
    return raw


def encode_key(key: bytes) -> str:
    """The base64 text form of a key, as kept in a key file or environment variable."""
    return base64.b64encode(key).decode("ascii")


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM encrypt; returns nonce || ciphertext-with-tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def unseal(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Inverse of `seal`; raises WrongKey when the key or associated data do not match."""
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
    except (InvalidTag, ValueError):
        raise WrongKey() from None


@dataclass(frozen=True)
class Envelope:
    """A value sealed under its own data key, the data key wrapped by the master key."""

    wrapped_key: bytes
    ciphertext: bytes


def envelope_seal(master_key: bytes, plaintext: bytes, associated_data: bytes) -> Envelope:
    """Encrypt `plaintext` with a fresh data key and wrap that key with `master_key`."""
    data_key = new_key()
    return Envelope(
        wrapped_key=seal(master_key, data_key, b"data-key\x00" + associated_data),
        ciphertext=seal(data_key, plaintext, associated_data),
    )


def envelope_open(master_key: bytes, envelope: Envelope, associated_data: bytes) -> bytes:
    """Decrypt an Envelope; raises WrongKey if the master key or associated data differ."""
    data_key = unseal(master_key, envelope.wrapped_key, b"data-key\x00" + associated_data)
    return unseal(data_key, envelope.ciphertext, associated_data)


def key_check_value(key: bytes) -> str:
    """A value that identifies a key without revealing it (stored to detect a wrong key)."""
    return hmac.new(key, b"secretshift key check v1", hashlib.sha256).hexdigest()


class Fingerprinter:
    """Computes `hmac-sha256:<hex>` fingerprints of values under one secret key."""

    def __init__(self, key: bytes):
        self._key = key

    def __call__(self, data: bytes) -> str:
        return FINGERPRINT_PREFIX + hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "Fingerprinter(<key masked>)"


def derive_key(key: bytes, purpose: str) -> bytes:
    """A separate 32-byte key for one purpose (HKDF-SHA256), so one secret key can serve
    fingerprints and journal encryption without the two uses ever sharing a key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=f"secretshift {purpose}".encode()).derive(key)
