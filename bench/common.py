"""What the benchmarks share: a throwaway migrated database, percentiles and a bounded wait."""
from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def platform_database(*, redis: bool = True, **env: str) -> Iterator[None]:
    """A throwaway PostgreSQL (and Redis, unless `redis=False`: then the broker's address is never dialled),
    Django set up against them with `env` on top, and every migration applied."""
    from devtools.servers import PostgresServer, RedisServer

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaosplane-bench-")))
        pg = stack.enter_context(PostgresServer(tmp / "pg"))
        broker = stack.enter_context(RedisServer(tmp / "redis")).url if redis else "redis://127.0.0.1:1/0"
        os.environ.update(DATABASE_URL=pg.url, REDIS_URL=broker, SECRET_KEY=secrets.token_urlsafe(40), DEBUG="0", **env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield


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
