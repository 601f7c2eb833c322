"""Bearer secrets of the form `<mark>_<prefix>_<secret>`: API tokens (cpt), environments' registration
tokens (cpr) and agents' credentials (cpa). The prefix is public and finds the row; only SHA-256 of
the secret is stored, compared in constant time."""
from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX_LENGTH = 12  # hex: 48 bits, so prefixes do not collide before many millions of secrets


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so one SHA-256 is enough (no password stretching needed) and
    # it survives SECRET_KEY rotation, unlike an HMAC keyed on it.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_bearer(mark: str) -> tuple[str, str, str]:
    """(prefix, secret, full bearer string); store only the prefix and hash_secret(secret)."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    return prefix, secret, f"{mark}_{prefix}_{secret}"


def split_bearer(mark: str, raw: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed `<mark>_<prefix>_<secret>`, else None."""
    found, _, rest = raw.strip().partition("_")
    prefix, _, secret = rest.partition("_")
    if found != mark or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    return prefix, secret


def secret_matches(stored_hash: str, secret: str) -> bool:
    return bool(stored_hash) and hmac.compare_digest(stored_hash, hash_secret(secret))
