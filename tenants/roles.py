"""Roles inside a tenant, and which role each action needs by default."""
from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.OWNER: 3}

# The default action -> least role mapping of a tenant-owned model; models override entries.
DEFAULT_ACTION_ROLES: dict[str, Role] = {
    "view": Role.VIEWER,
    "add": Role.OPERATOR,
    "change": Role.OPERATOR,
    "delete": Role.OPERATOR,
    "run": Role.OPERATOR,
}


def rank(role: str | None) -> int:
    return RANK.get(role, 0) if role else 0


def at_least(role: str | None, required: str) -> bool:
    return rank(role) >= rank(required)


def lower_of(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return None
    return a if rank(a) <= rank(b) else b
