"""Settings come from the environment; the development secret key is refused with DEBUG off."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'], 'name': str(settings.DATABASES['default']"
    "['NAME']), 'redis': settings.CELERY_BROKER_URL, 'hosts': settings.ALLOWED_HOSTS, 'debug': settings.DEBUG}))"
)


def start(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL"}}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=base | env, capture_output=True, text=True, timeout=60
    )


def test_the_development_key_is_refused_with_debug_off() -> None:
    result = start()
    assert result.returncode != 0
    assert "SECRET_KEY is the development default while DEBUG is off" in result.stderr


def test_defaults_for_make_run() -> None:
    result = start(DEBUG="1")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["db"] == "django.db.backends.sqlite3" and got["name"] == str(REPO / "var" / "chaosplane.sqlite3")
    assert got["redis"] == "redis://127.0.0.1:6379/0"
    assert got["hosts"] == ["127.0.0.1", "localhost"] and got["debug"] is True


def test_production_values_come_from_the_environment() -> None:
    result = start(
        SECRET_KEY="k" * 50,
        DATABASE_URL="postgresql://app@db.internal:5433/chaos",
        REDIS_URL="redis://cache.internal:6380/2",
        ALLOWED_HOSTS="chaos.example.com, api.example.com",
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert got["db"] == "django.db.backends.postgresql" and got["name"] == "chaos"
    assert got["redis"] == "redis://cache.internal:6380/2"
    assert got["hosts"] == ["chaos.example.com", "api.example.com"] and got["debug"] is False
