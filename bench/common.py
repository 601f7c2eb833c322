"""What the benchmarks share: percentiles and a bounded wait."""
from __future__ import annotations

import statistics
import time
from typing import Any


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of the samples."""
    q = statistics.quantiles(samples, n=100)
    return q[49], q[98]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """predicate()'s first truthy value, or exit naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")
