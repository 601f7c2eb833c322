"""Encryption at rest for environment credentials: a dict in, a Fernet token (AES-CBC + HMAC-SHA256) out.

Keys come from `settings.CHAOSPLANE_ENCRYPTION_KEYS`, a list of Fernet keys (`Fernet.generate_key()`):
the first encrypts, every one decrypts. To rotate, put a new key first, `rotate()` every stored token,
then drop the old key. Without that setting one key is derived from `SECRET_KEY` (HKDF-SHA256), so a
development install works with no setup; changing `SECRET_KEY` then makes stored credentials unreadable.

Neither a token nor what it holds ever appears in an error message.
"""
from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.exceptions import ImproperlyConfigured

HKDF_INFO = b"chaosplane environment credentials"
UNREADABLE = "environment credentials cannot be decrypted: the encryption key changed?"


class SecretsError(Exception):
    """Stored credentials cannot be read back (wrong key, or a tampered or truncated token)."""


def derived_key(secret_key: str) -> bytes:
    """The Fernet key derived from a Django SECRET_KEY."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def _fernet() -> MultiFernet:
    from django.conf import settings

    keys: Any = getattr(settings, "CHAOSPLANE_ENCRYPTION_KEYS", None)
    if isinstance(keys, str):  # one key, or a comma-separated list straight from the environment
        keys = [k for k in (part.strip() for part in keys.split(",")) if k]
    if not keys:
        return MultiFernet([Fernet(derived_key(settings.SECRET_KEY))])
    fernets = []
    for index, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # The key itself is never repeated: it is a secret.
            raise ImproperlyConfigured(
                f"CHAOSPLANE_ENCRYPTION_KEYS[{index}] is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with cryptography.fernet.Fernet.generate_key())"
            ) from None
    return MultiFernet(fernets)


def encrypt(data: dict[str, Any]) -> str:
    """`data` as JSON (sorted keys), encrypted with the current key."""
    if not isinstance(data, dict):
        raise TypeError(f"encrypt() takes a dict, not {type(data).__name__}")
    plain = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return _fernet().encrypt(plain.encode()).decode("ascii")


def decrypt(token: str) -> dict[str, Any]:
    """The dict that `encrypt` was given; SecretsError if no key opens the token or it was altered."""
    try:
        plain = _fernet().decrypt(token)
        data = json.loads(plain)
    except (InvalidToken, TypeError, ValueError):
        raise SecretsError(UNREADABLE) from None
    if not isinstance(data, dict):
        raise SecretsError(UNREADABLE)
    return data


def rotate(token: str) -> str:
    """The same contents re-encrypted with the current (first) key."""
    try:
        return _fernet().rotate(token).decode("ascii")
    except (InvalidToken, TypeError, ValueError):
        raise SecretsError(UNREADABLE) from None
