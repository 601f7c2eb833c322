"""Run the test suite against throwaway PostgreSQL and Redis servers.

    python -m devtools.testrun [pytest args]      (what `make test` calls)

Installs missing system packages (as root), starts PostgreSQL and Redis on free ports in a fresh
temp dir, exports DATABASE_URL, REDIS_URL and a random SECRET_KEY (DEBUG defaults to off, as in
production), runs `python -m pytest <args>`, stops the servers (also on Ctrl-C / SIGTERM),
removes the temp dir and exits with pytest's exit code.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools import sysdeps
from devtools.servers import PostgresServer, RedisServer, ServerError

REPO = Path(__file__).resolve().parent.parent


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_pytest(args: list[str], env: dict[str, str]) -> int:
    pytest = subprocess.Popen([sys.executable, "-m", "pytest", *args], env=env, cwd=REPO)
    try:
        return pytest.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached pytest too (same process group); let it finish its report first,
        # the servers stay up until it is gone. Escalate if it does not stop.
        steps = ((None, 5), (signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, None))
        for sig, grace in steps:
            try:
                if sig is not None and pytest.poll() is None:
                    pytest.send_signal(sig)
                pytest.wait(timeout=grace)
                break
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                continue
        return 130


def main(args: list[str]) -> int:
    started = time.monotonic()
    rc = 1
    # SIGTERM (e.g. CI cancelling the job) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="chaosplane-test-"))
    try:
        sysdeps.ensure(sysdeps.TEST_PACKAGES)
        with (
            PostgresServer(tmp / "postgres") as pg,
            RedisServer(tmp / "redis") as redis,
        ):
            env = dict(os.environ)
            env.update(
                DATABASE_URL=pg.url,
                REDIS_URL=redis.url,
                SECRET_KEY=secrets.token_urlsafe(50),
            )
            env.setdefault("DEBUG", "0")
            rc = _run_pytest(args, env)
    except KeyboardInterrupt:
        rc = 130
    except (ServerError, sysdeps.SysDepsError) as exc:
        print(f"testrun: {exc}", file=sys.stderr)
        rc = 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        elapsed = time.monotonic() - started
        print(f"testrun: pytest exit code {rc}, {elapsed:.1f}s in total", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
