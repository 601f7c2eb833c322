"""GET /healthz against real parts: a Redis server and a Celery worker this test starts and stops
itself (the suite's own Redis stays untouched), and the suite's PostgreSQL."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from devtools.servers import CeleryWorker, RedisServer

REPO = Path(__file__).resolve().parents[2]


def poll(client: Client, want: int, timeout: float = 45.0) -> dict[str, Any]:
    """Ask /healthz until it answers `want` (a worker reconnects to a restarted broker in seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/healthz")
        if response.status_code == want or time.monotonic() > deadline:
            assert response.status_code == want, response.json()
            return response.json()
        time.sleep(0.5)


@pytest.fixture
def own_redis(tmp_path: Path, settings: Any) -> Any:
    server = RedisServer(tmp_path / "redis").start()
    settings.REDIS_URL = settings.CELERY_BROKER_URL = server.url
    yield server
    server.stop()


@pytest.fixture
def worker(own_redis: RedisServer, tmp_path: Path) -> Any:
    env = dict(os.environ, REDIS_URL=own_redis.url)
    process = CeleryWorker(env=env, cwd=REPO, logfile=tmp_path / "worker.log").start()
    yield process
    process.stop()
    assert not process.running


@pytest.mark.integration
@pytest.mark.django_db
def test_healthz_is_503_without_a_worker_and_names_it(own_redis: RedisServer) -> None:
    body = poll(Client(), 503)
    assert body["failing"] == ["worker"]
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


@pytest.mark.integration
@pytest.mark.django_db
def test_healthz_follows_redis_going_away_and_coming_back(own_redis: RedisServer, worker: CeleryWorker) -> None:
    client = Client()
    body = poll(client, 200)
    assert body["status"] == "ok" and body["failing"] == []
    assert worker.hostname.split("@")[0] in body["checks"]["worker"]["detail"]

    own_redis.stop()
    body = poll(client, 503)
    assert body["failing"] == ["redis", "worker"]
    assert "Error" in body["checks"]["redis"]["detail"]

    own_redis.start()
    body = poll(client, 200)
    assert body["failing"] == []
    assert worker.running
