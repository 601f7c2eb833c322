"""(being built)"""
from __future__ import annotations


def attempt(delivery_id: int) -> None:
    raise NotImplementedError


def retry_due() -> None:
    pass
