"""(being built)"""
from __future__ import annotations


def send_monthly() -> None:
    pass
