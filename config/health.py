"""GET /healthz: is the database reachable, does Redis answer, is at least one Celery worker alive?"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

REDIS_TIMEOUT = 0.5
WORKER_PING_TIMEOUT = 1.0


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return f"{connection.vendor} answers"


def check_redis() -> str:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )
    try:
        client.ping()
    finally:
        client.close()
    return "answers PING"


def _ping_workers(result: list[Any]) -> None:
    conf = celery_app.conf
    # A mailbox of our own, without the app's producer pool: the probe uses one fresh connection to
    # the broker the settings name now, not a pooled one that may point at a broker long gone.
    mailbox = celery_app.control.Mailbox(
        conf.control_exchange, type="fanout", accept=conf.accept_content, serializer=conf.task_serializer
    )
    try:
        with celery_app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=REDIS_TIMEOUT)
            replies = mailbox(conn)._broadcast("ping", {}, None, True, WORKER_PING_TIMEOUT, limit=1)
            result.append(replies)
    except Exception as error:  # reported by check_workers
        result.append(error)


def check_workers() -> str:
    # kombu retries a publish until the broker answers; should Redis vanish between the Redis check
    # and the ping, the ping thread waits for it, but this request answers within its bound.
    result: list[Any] = []
    thread = threading.Thread(target=_ping_workers, args=(result,), name="healthz-ping", daemon=True)
    thread.start()
    thread.join(WORKER_PING_TIMEOUT + 2 * REDIS_TIMEOUT + 0.5)
    if not result:
        raise TimeoutError("the broker stopped answering while asking the workers")
    if isinstance(result[0], Exception):
        raise result[0]
    replies = result[0]
    if not replies:
        raise RuntimeError(f"no Celery worker answered within {WORKER_PING_TIMEOUT:g} s")
    # limit=1: the first answer proves a live worker, so a healthy check returns at once.
    names = sorted(name for reply in replies for name in reply)
    return f"alive: {', '.join(names)}"


def _run(check: Callable[[], str]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail, ok = check(), True
    except Exception as error:  # any failure of a dependency is a finding, not a crash
        detail, ok = f"{type(error).__name__}: {error}", False
    return {"ok": ok, "detail": detail, "ms": round((time.monotonic() - started) * 1000, 1)}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _run(check_database), "redis": _run(check_redis)}
    if checks["redis"]["ok"]:
        checks["worker"] = _run(check_workers)
    else:
        # Asking workers goes through the broker: with Redis down the answer is known and waiting is pointless.
        checks["worker"] = {"ok": False, "detail": "unknown: the broker (Redis) is unreachable", "ms": 0.0}
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "ok" if not failing else "unhealthy", "failing": failing, "checks": checks}
    return JsonResponse(body, status=200 if not failing else 503)
