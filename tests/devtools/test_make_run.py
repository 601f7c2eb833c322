"""`make run`'s runner for real: it brings every part up (healthz says so), prints the demo owner's
password on the first run only, and leaves nothing running after Ctrl-C. It runs beside anything on
the machine: its own Redis port, web port, data directory and SQLite file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from devtools.servers import free_port, port_open

REPO = Path(__file__).resolve().parents[2]


def processes_with(marker: str) -> list[int]:
    """PIDs whose environment carries `marker`: every process the runner started inherits it."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


def run_until_healthy(env: dict[str, str], log: Path, port: int, marker: str) -> str:
    """Start the runner, wait for a 200 from /healthz, Ctrl-C it, return what it printed."""
    with open(log, "wb") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "devtools.run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline, status, body = time.monotonic() + 90, 0, {}
        while time.monotonic() < deadline and runner.poll() is None:
            status, body = healthz(port)
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, (body, log.read_text()[-3000:])
        assert body["checks"]["database"]["detail"] == "sqlite answers"
        # runner, web, worker, beat (redis-server rewrites its environ area for its process title,
        # so its port is what tells whether it is gone).
        assert len(processes_with(marker)) >= 4
    finally:
        os.killpg(runner.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends to the group
        runner.wait(timeout=60)
    return log.read_text()


@pytest.mark.integration
def test_make_run_starts_everything_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    marker = f"CHAOSPLANE_RUN_TEST={uuid.uuid4().hex}"
    port, redis_port = free_port(), free_port()
    env = dict(
        os.environ,
        CHAOSPLANE_VAR=str(tmp_path / "var"),
        CHAOSPLANE_PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'chaosplane.sqlite3'}",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        CHAOSPLANE_RUN_TEST=marker.split("=", 1)[1],
    )
    env.pop("SECRET_KEY", None)  # make run uses the development key with DEBUG on

    first = run_until_healthy(env, tmp_path / "first.log", port, marker)
    assert first.count("password for admin (shown once)") == 1
    for part in ("redis", "setup", "web", "worker", "beat"):
        assert f"{part:>6} | " in first, part
    assert processes_with(marker) == [], first[-2000:]
    assert not port_open(redis_port) and not port_open(port)

    second = run_until_healthy(env, tmp_path / "second.log", port, marker)
    assert "password" not in second
    assert processes_with(marker) == []
    assert not port_open(redis_port) and not port_open(port)
