"""Run Chaosplane locally: Redis, migrations, a demo tenant, web server, Celery worker and beat.

    python -m devtools.run        (what `make run` calls)

Every part runs in its own process group with its output in var/log/<part>.log, echoed here
prefixed with the part's name. Ctrl-C or SIGTERM stops everything; if one part dies, the others
are stopped and the exit code is non-zero.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from devtools import sysdeps
from devtools.servers import (
    CeleryWorker,
    ManagedProcess,
    RedisServer,
    ServerError,
    port_open,
    redis_ping,
)

REPO = Path(__file__).resolve().parent.parent
# Overridable so that a test can run a second platform beside a developer's: CHAOSPLANE_VAR (Redis
# data and logs; the SQLite file follows DATABASE_URL) and CHAOSPLANE_PORT (the web server).
VAR = Path(os.environ.get("CHAOSPLANE_VAR") or REPO / "var")
LOGS = VAR / "log"
WEB_HOST, WEB_PORT = "127.0.0.1", int(os.environ.get("CHAOSPLANE_PORT") or 8000)
STARTUP_TIMEOUT = 60.0

_print_lock = threading.RLock()  # re-entrant: a signal may interrupt a print


def say(name: str, line: str) -> None:
    with _print_lock:
        print(f"{name:>6} | {line}", flush=True)


class Tail(threading.Thread):
    """Echo the lines a part appends to its log file, prefixed with its name."""

    def __init__(self, name: str, path: Path, offset: int = 0) -> None:
        super().__init__(name=f"tail-{name}", daemon=True)
        self.part, self.path, self.offset = name, path, offset
        self.done = threading.Event()

    def run(self) -> None:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            pending = b""
            while True:
                chunk = fh.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith(b"\n"):
                        say(self.part, pending.decode("utf-8", "replace").rstrip())
                        pending = b""
                    continue
                if self.done.is_set():
                    if pending:
                        say(self.part, pending.decode("utf-8", "replace").rstrip())
                    return
                time.sleep(0.05)

    def finish(self) -> None:
        self.done.set()
        self.join(timeout=2)


def child_env() -> dict[str, str]:
    env = dict(os.environ)  # DATABASE_URL passes through only if the user set it
    env["DEBUG"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    return env


def run_step(name: str, argv: list[str], env: dict[str, str]) -> None:
    """Run a one-shot command, echoing its output; raise when it fails."""
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            say(name, line.rstrip())
    except BaseException:
        proc.terminate()
        proc.wait()
        raise
    if proc.wait() != 0:
        raise ServerError(f"{' '.join(argv[1:])} failed with exit code {proc.returncode}")


class Stop(Exception):
    """Ctrl-C or SIGTERM."""


def main() -> int:
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()
        raise Stop

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    parts: list[tuple[ManagedProcess, Tail]] = []
    env = child_env()
    python = sys.executable
    rc = 0
    try:
        VAR.mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(exist_ok=True)

        # Redis: the local one on REDIS_URL's port (6379 by default), reused if it answers.
        redis_url = urlsplit(env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        redis_host, redis_port = (
            redis_url.hostname or "127.0.0.1",
            redis_url.port or 6379,
        )
        if redis_host not in ("127.0.0.1", "localhost"):
            say("redis", f"using {redis_host}:{redis_port} from REDIS_URL")
        elif redis_ping(redis_port):
            say("redis", f"something already answers PING on {redis_port}; using it")
        else:
            sysdeps.ensure(sysdeps.RUN_PACKAGES)
            redis = RedisServer(VAR / "redis", port=redis_port)
            redis.logfile.unlink(missing_ok=True)
            redis.start(wait=False)
            tail = Tail("redis", redis.logfile, redis.log_offset)
            tail.start()
            parts.append((redis, tail))
            redis.wait_ready(timeout=10)
            time.sleep(0.1)  # let its startup lines print first
            say("redis", f"up on 127.0.0.1:{redis_port}")

        run_step("setup", [python, "manage.py", "migrate", "--noinput", "-v", "0"], env)
        run_step(
            "setup",
            [
                python,
                "manage.py",
                "create_tenant",
                "demo",
                "--owner",
                "admin",
                "--exist-ok",
            ],
            env,
        )

        if port_open(WEB_PORT, WEB_HOST):
            raise ServerError(f"{WEB_HOST}:{WEB_PORT} is already in use; stop what listens there")
        web = ManagedProcess(
            [python, "manage.py", "runserver", f"{WEB_HOST}:{WEB_PORT}", "--noreload"],
            name="web",
            logfile=LOGS / "web.log",
            env=env,
            cwd=REPO,
            ready=lambda p: port_open(WEB_PORT, WEB_HOST),
        )
        worker = CeleryWorker(env=env, cwd=REPO, logfile=LOGS / "worker.log")
        beat = ManagedProcess(
            [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "info",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            ],
            name="beat",
            logfile=LOGS / "beat.log",
            env=env,
            cwd=REPO,
            ready=lambda p: "beat: Starting..." in p.log_text(),
        )
        pending = [web, worker, beat]
        for part in pending:
            part.logfile.unlink(missing_ok=True)
            part.start(wait=False)
            tail = Tail(part.name, part.logfile, part.log_offset)
            tail.start()
            parts.append((part, tail))

        deadline = time.monotonic() + STARTUP_TIMEOUT
        announced = False
        while not stopping.is_set():
            for part, _ in parts:
                if not part.running:
                    say(
                        part.name,
                        f"exited with code {part.returncode}; stopping everything",
                    )
                    return 1
            for part in list(pending):
                if part.is_ready():
                    pending.remove(part)
                    say(part.name, "up")
            if not pending and not announced:
                announced = True
                with _print_lock:
                    print(
                        f"\n=== Chaosplane is running at http://{WEB_HOST}:{WEB_PORT}/ "
                        "(log in as admin; Ctrl-C to stop) ===\n",
                        flush=True,
                    )
            if pending and time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                say(
                    "run",
                    f"not up after {STARTUP_TIMEOUT:.0f}s: {names}; stopping everything",
                )
                return 1
            time.sleep(0.2)
    except Stop:
        rc = 0
    except (ServerError, sysdeps.SysDepsError) as exc:
        say("run", str(exc))
        rc = 1
    finally:
        # No more interruptions while stopping: a second Ctrl-C must not leave orphans.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for part, tail in reversed(parts):
            if part.running:
                say(part.name, "stopping")
            part.stop()
            tail.finish()
        say("run", "all stopped")
    return rc


if __name__ == "__main__":
    sys.exit(main())
