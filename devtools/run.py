"""Run Chaosplane locally: Redis, migrations, a demo tenant, web server, Celery worker and beat, the
agent gateway (TLS, development certificates in var/certs), and, as root on Linux, a local node agent
and a demo service in a network namespace to break (devtools.demo).

    python -m devtools.run        (what `make run` calls)

Every part runs in its own process group with its output in var/log/<part>.log, echoed here
prefixed with the part's name. Ctrl-C or SIGTERM stops everything (and removes the demo network);
if one part dies, the others are stopped and the exit code is non-zero. The demo service is the
exception: it is started again after a short pause, so that killing it shows it die and come back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devtools import demo, sysdeps
from devtools.servers import (
    CeleryWorker,
    ManagedProcess,
    RedisServer,
    ServerError,
    port_open,
    redis_ping,
)

REPO = Path(__file__).resolve().parent.parent


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable) or str(default)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"{variable}={value!r} is not a TCP port (1-65535)")
    return int(value)


# Overridable so that a test can run a second platform beside a developer's: CHAOSPLANE_VAR (Redis
# data, logs, certificates, the agent's journal and state; the SQLite file follows DATABASE_URL),
# CHAOSPLANE_PORT (the web server) and CHAOSPLANE_GATEWAY_PORT (the agent gateway).
VAR = Path(os.environ.get("CHAOSPLANE_VAR") or REPO / "var")
LOGS = VAR / "log"
CERTS = VAR / "certs"
AGENT_DIR = VAR / "agent"
WEB_HOST, WEB_PORT = "127.0.0.1", _port("CHAOSPLANE_PORT", 8000)
GATEWAY_HOST, GATEWAY_PORT = "127.0.0.1", _port("CHAOSPLANE_GATEWAY_PORT", 7443)
STARTUP_TIMEOUT = 60.0
CERT_FILES = ("ca.pem", "server.pem", "server-key.pem", "agent.pem", "agent-key.pem")  # manage.py devcerts

_print_lock = threading.RLock()  # re-entrant: a signal may interrupt a print


def say(name: str, line: str) -> None:
    with _print_lock:
        print(f"{name:>7} | {line}", flush=True)


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


def ensure_certs(python: str, env: dict[str, str]) -> None:
    """The gateway's development CA and certificates, written once under var/certs."""
    if all((CERTS / name).is_file() for name in CERT_FILES):
        return
    run_step("setup", [python, "manage.py", "devcerts", str(CERTS), "--force"], env)


def prepare_demo(python: str, env: dict[str, str], agent_state: Path | None) -> dict[str, Any]:
    """Run `devtools.demo prepare`; its stdout (JSON, with the agent's registration token) stays here,
    its stderr is echoed."""
    argv = [python, "-m", "devtools.demo", "prepare"]
    if agent_state is not None:
        argv += ["--agent-state", str(agent_state)]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    for line in result.stderr.splitlines():
        say("demo", line)
    if result.returncode != 0:
        raise ServerError(f"devtools.demo prepare failed with exit code {result.returncode}")
    try:
        prepared = json.loads(result.stdout)
    except ValueError:
        raise ServerError("devtools.demo prepare did not answer with JSON") from None
    if not isinstance(prepared, dict):
        raise ServerError("devtools.demo prepare did not answer with a JSON object")
    return prepared


def agent_env(env: dict[str, str], token: str | None) -> dict[str, str]:
    """The local agent's environment: none of the caller's CHAOSPLANE_AGENT_* settings; the
    registration token (when it needs one) here rather than in argv, where `ps` would show it."""
    out = {key: value for key, value in env.items() if not key.startswith("CHAOSPLANE_AGENT_")}
    if token:
        out["CHAOSPLANE_AGENT_TOKEN"] = token
    return out


def agent_argv(python: str) -> list[str]:
    return [
        python, "-m", "nodeagent",
        "--gateway", f"{GATEWAY_HOST}:{GATEWAY_PORT}",
        "--ca-file", str(CERTS / "ca.pem"),
        "--cert-file", str(CERTS / "agent.pem"),
        "--key-file", str(CERTS / "agent-key.pem"),
        "--journal", str(AGENT_DIR / "journal.sqlite3"),
        "--state-dir", str(AGENT_DIR / "state"),
        "--name", demo.AGENT_NAME,
        "--label", demo.AGENT_LABEL,
    ]  # fmt: skip


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Respawn:
    """Start a part again when it dies, after a pause that doubles (1 s up to 10 s) while it keeps
    dying within 30 s of its start."""

    FIRST, LONGEST, STABLE = 1.0, 10.0, 30.0

    def __init__(self, part: ManagedProcess) -> None:
        self.part = part
        self.delay = self.FIRST
        self.started = time.monotonic()
        self.due: float | None = None

    def poll(self, now: float) -> None:
        part = self.part
        if part.running:
            return
        if self.due is None:
            if now - self.started > self.STABLE:
                self.delay = self.FIRST
            how = describe_exit(part.returncode)
            part.stop()  # what it left in its process group
            say(part.name, f"{how}; starting it again in {self.delay:.0f}s")
            self.due = now + self.delay
            self.delay = min(self.delay * 2, self.LONGEST)
        elif now >= self.due:
            self.due = None
            part.start(wait=False)
            self.started = now
            say(part.name, f"started again (pid {part.pid})")


def try_it(experiments: list[dict[str, Any]], skipped: str | None) -> str:
    web = f"http://{WEB_HOST}:{WEB_PORT}"
    python = sys.executable
    if python.startswith(str(REPO) + os.sep):
        python = os.path.relpath(python, REPO)
    lines = [
        "",
        f"=== Chaosplane is running at {web}/ (sign in as admin; Ctrl-C to stop) ===",
        "",
        "Try it:",
        f"  portal          {web}/  (tenant {demo.TENANT}, user admin)",
        f"  agent gateway   {GATEWAY_HOST}:{GATEWAY_PORT}, TLS with the CA {CERTS / 'ca.pem'}",
    ]
    if skipped is None:
        lines += [
            f"  local agent     {demo.AGENT_NAME!r} in environment {demo.TENANT}/{demo.ENVIRONMENT}, "
            f"label {demo.AGENT_LABEL}",
            f"  demo service    curl {demo.SERVICE_URL}   (namespace {demo.NETNS}, reached through {demo.HOST_IF})",
        ]
    else:
        lines.append(f"  local agent and demo service skipped: {skipped}")
    lines.append(f"  experiments     in tenant {demo.TENANT}, each 30 s on agent {demo.AGENT_NAME}:")
    for experiment in experiments:
        lines.append(f"    {experiment['name']:<16} {experiment['id']}  {experiment['action']}")
    body = json.dumps({"environment": demo.ENVIRONMENT})
    lines += [
        "  start a run:",
        f"    TOKEN=$({python} manage.py issue_token --tenant {demo.TENANT} --user admin --role operator "
        "--expires-in-days 1)",
        f"    curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{body}' \\",
        f"         {web}/api/v1/tenants/{demo.TENANT}/experiments/<id>/runs/",
    ]
    if skipped is None:
        lines.append(f"    curl {demo.SERVICE_URL}   # during the run, to see the effect")
    lines += [
        f"  workflow        {demo.WORKFLOW['name']}: {demo.WORKFLOW['description']}",
        f"    curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{body}' \\",
        f"         {web}/api/v1/tenants/{demo.TENANT}/workflows/<id>/runs/     (ids: .../workflows/)",
        f"  schedule        {demo.SCHEDULE['name']} (paused): POST .../schedules/<id>/resume/ to watch it tick",
    ]
    return "\n".join(lines) + "\n"


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
    lock = None  # held while this run owns the demo's namespace and link names
    network_made = False
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
                demo.TENANT,
                "--owner",
                "admin",
                "--exist-ok",
            ],
            env,
        )
        ensure_certs(python, env)

        # The local agent and the demo service: root on Linux, and one `make run` at a time.
        skipped = demo.unsupported_reason()
        if skipped is None:
            lock = demo.acquire_lock()
            if lock is None:
                skipped = f"another make run on this machine has the demo network ({demo.NETNS}, {demo.HOST_IF})"
        if skipped is not None:
            say("demo", f"the local agent and the demo service are skipped: {skipped}")
        else:
            AGENT_DIR.mkdir(mode=0o700, exist_ok=True)
        prepared = prepare_demo(python, env, AGENT_DIR / "state" if skipped is None else None)

        for host, port, variable in (
            (WEB_HOST, WEB_PORT, "CHAOSPLANE_PORT"),
            (GATEWAY_HOST, GATEWAY_PORT, "CHAOSPLANE_GATEWAY_PORT"),
        ):
            if port_open(port, host):
                raise ServerError(f"{host}:{port} is already in use; stop what listens there (or set {variable})")

        if skipped is None:
            removed = demo.network_down()
            if removed:
                say("demo", f"removed what an earlier run left: {', '.join(removed)}")
            network_made = True  # from here on, stopping removes it (network_up also undoes a half-made one)
            demo.network_up()
            say(
                "demo",
                f"network namespace {demo.NETNS}: {demo.HOST_IF} {demo.HOST_IP}/{demo.PREFIXLEN} on the host, "
                f"{demo.NS_IF} {demo.SERVICE_IP}/{demo.PREFIXLEN} inside",
            )

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
        gateway = ManagedProcess(
            [
                python,
                "manage.py",
                "agentgateway",
                "--listen",
                f"{GATEWAY_HOST}:{GATEWAY_PORT}",
                "--cert",
                str(CERTS / "server.pem"),
                "--key",
                str(CERTS / "server-key.pem"),
                "--client-ca",
                str(CERTS / "ca.pem"),
            ],
            name="gateway",
            logfile=LOGS / "gateway.log",
            env=env,
            cwd=REPO,
            ready=lambda p: port_open(GATEWAY_PORT, GATEWAY_HOST),
        )
        pending = [web, worker, beat, gateway]
        respawn: dict[ManagedProcess, Respawn] = {}
        after_gateway: list[ManagedProcess] = []  # started once the gateway is up (no failed dials first)
        if skipped is None:
            agent = ManagedProcess(
                agent_argv(python),
                name="agent",
                logfile=LOGS / "agent.log",
                env=agent_env(env, prepared.get("token")),
                cwd=REPO,
                ready=lambda p: "connected to " in p.log_text(),
            )
            agent.stop_timeout = 20.0  # it removes the faults it holds before it exits
            service = ManagedProcess(
                demo.service_argv(python),
                name="demo",
                logfile=LOGS / "demo.log",
                env=env,
                cwd=REPO,
                ready=lambda p: port_open(demo.SERVICE_PORT, demo.SERVICE_IP),
            )
            pending += [service, agent]
            after_gateway.append(agent)
            respawn[service] = Respawn(service)

        def start(part: ManagedProcess) -> None:
            part.logfile.unlink(missing_ok=True)
            part.start(wait=False)
            tail = Tail(part.name, part.logfile, part.log_offset)
            tail.start()
            parts.append((part, tail))

        for part in pending:
            if part not in after_gateway:
                start(part)

        deadline = time.monotonic() + STARTUP_TIMEOUT
        announced = False
        while not stopping.is_set():
            now = time.monotonic()
            for part, _ in parts:
                if part in respawn:
                    respawn[part].poll(now)
                elif not part.running:
                    say(part.name, f"{describe_exit(part.returncode)}; stopping everything")
                    return 1
            for part in list(pending):
                if part.running and part.is_ready():
                    pending.remove(part)
                    say(part.name, "up")
                    if part is gateway:
                        for later in after_gateway:
                            start(later)
            if not pending and not announced:
                announced = True
                with _print_lock:
                    print(try_it(prepared.get("experiments") or [], skipped), flush=True)
            if pending and now > deadline:
                names = ", ".join(p.name for p in pending)
                say(
                    "run",
                    f"not up after {STARTUP_TIMEOUT:.0f}s: {names}; stopping everything",
                )
                return 1
            time.sleep(0.2)
    except Stop:
        rc = 0
    except (ServerError, sysdeps.SysDepsError, demo.DemoError) as exc:
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
        if network_made:
            try:
                removed = demo.network_down()
                say("demo", f"removed {', '.join(removed) or 'nothing (already gone)'}")
            except demo.DemoError as exc:
                say("demo", f"could not remove the demo network: {exc}")
                rc = rc or 1
        if lock is not None:
            lock.close()
        say("run", "all stopped")
    return rc


if __name__ == "__main__":
    sys.exit(main())
