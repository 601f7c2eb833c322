"""Small process wrappers for local servers: Redis, PostgreSQL, a Celery worker.

Used by tests, benchmarks, `devtools.testrun` and `devtools.run`. Every process is started from an
argv list (never a shell string) in its own session, so stopping it signals its whole process
group. `stop()` is idempotent, and every started wrapper is also stopped at interpreter exit.

    with RedisServer(tmp_path / "redis") as redis, PostgresServer(tmp_path / "pg") as pg:
        env = {"REDIS_URL": redis.url, "DATABASE_URL": pg.url}
"""

from __future__ import annotations

import atexit
import grp
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "CeleryWorker",
    "ManagedProcess",
    "PostgresServer",
    "RedisServer",
    "ServerError",
    "children",
    "free_port",
    "group_members",
    "pid_exists",
    "port_open",
    "redis_ping",
]


class ServerError(RuntimeError):
    """A server could not be started (the message includes the tail of its log)."""


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_ping(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on host:port (raw RESP, no client library)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def pid_exists(pid: int) -> bool:
    """True when a process with this pid exists (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stats() -> list[tuple[int, str, int, int]]:
    """(pid, state, ppid, pgrp) of every process, from /proc."""
    stats = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the ")" closing the command name: state ppid pgrp ...
        fields = data[data.rfind(")") + 2 :].split()
        stats.append((int(entry.name), fields[0], int(fields[1]), int(fields[2])))
    return stats


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in process group `pgid`."""
    return [pid for pid, state, _, pgrp in _proc_stats() if pgrp == pgid and state != "Z"]


def children(pid: int) -> list[int]:
    """Pids of the live (non-zombie) direct children of `pid` (PostgreSQL backends make
    themselves group leaders, so group_members() does not see them)."""
    return [p for p, state, ppid, _ in _proc_stats() if ppid == pid and state != "Z"]


def _tail(path: Path, lines: int = 30, offset: int = 0) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return "(no log)"
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


# Started wrappers, stopped (newest first) at interpreter exit.
_live: list[ManagedProcess] = []
_live_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        procs = list(reversed(_live))
    for proc in procs:
        try:
            proc.stop()
        except Exception as exc:  # noqa: BLE001 - keep stopping the others
            print(f"devtools.servers: stopping {proc.name} failed: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- base class


class ManagedProcess:
    """One long-running child process, output appended to `logfile`, in its own session.

    `ready` is a predicate called while waiting for startup; `stop_signal` is sent to the process
    group on stop(), SIGKILL follows after `stop_timeout` seconds.
    """

    name = "process"
    start_timeout = 30.0
    stop_timeout = 10.0
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        *,
        logfile: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
        ready: Callable[[ManagedProcess], bool] | None = None,
        user: str | None = None,
    ) -> None:
        self.argv = list(argv) if argv is not None else None
        self.logfile = Path(logfile)
        self.env = dict(env) if env is not None else None
        self.cwd = Path(cwd) if cwd is not None else None
        if name:
            self.name = name
        self._ready = ready
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_offset = 0

    # -- state

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def log_text(self) -> str:
        """Everything logged since the last start."""
        return _tail(self.logfile, lines=10**9, offset=self.log_offset)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.logfile, lines=lines, offset=self.log_offset)

    # -- lifecycle

    def command(self) -> list[str]:
        if self.argv is None:
            raise NotImplementedError
        return self.argv

    def is_ready(self) -> bool:
        return self._ready(self) if self._ready else True

    def start(self, wait: bool = True) -> ManagedProcess:
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        argv = self.command()
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            self.log_offset = log.tell()
            kwargs: dict = {}
            if self.user:
                entry = pwd.getpwnam(self.user)
                kwargs = {
                    "user": entry.pw_uid,
                    "group": entry.pw_gid,
                    "extra_groups": [],
                }
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                    **kwargs,
                )
            except FileNotFoundError as exc:
                raise ServerError(f"{self.name}: cannot run {argv[0]}: {exc}") from exc
        with _live_lock:
            _live.append(self)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None:
                raise ServerError(f"{self.name} was not started")
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise ServerError(
                    f"{self.name} exited with code {code} during startup; log {self.logfile}:\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise ServerError(f"{self.name} not ready after {timeout:.0f}s; log {self.logfile}:\n{tail}")
            time.sleep(0.02)

    def stop(self, timeout: float | None = None) -> None:
        """Signal the process group, wait, SIGKILL what is left. Safe to call repeatedly."""
        proc = self.proc
        if proc is None:
            return
        timeout = self.stop_timeout if timeout is None else timeout
        pgid = proc.pid  # session leader: its pid is the process group id
        if proc.poll() is None:
            self._send_stop(proc)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killpg(pgid, signal.SIGKILL)
                proc.wait()
        # Anything the leader left behind in its group.
        if group_members(pgid):
            self._killpg(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.02)
        with _live_lock:
            if self in _live:
                _live.remove(self)
        self._after_stop()

    def kill(self) -> None:
        """SIGKILL the whole process group at once: no chance to clean up (a crash, an OOM kill)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self._killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.stop()

    def _send_stop(self, proc: subprocess.Popen[bytes]) -> None:
        self._killpg(proc.pid, self.stop_signal)

    def _after_stop(self) -> None:
        pass

    @staticmethod
    def _killpg(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self):
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} {state}>"


# --------------------------------------------------------------------------- Redis


def _redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if not found:
        raise ServerError(
            "redis-server not found; install Debian's redis-server (`python -m devtools.sysdeps redis-server` as root)"
        )
    return found


class RedisServer(ManagedProcess):
    """A throwaway redis-server on 127.0.0.1, no persistence. Restartable on the same port."""

    name = "redis"
    start_timeout = 10.0

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        super().__init__(logfile=self.workdir / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return [
            _redis_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir.resolve()),
            "--daemonize",
            "no",
        ]

    def is_ready(self) -> bool:
        return redis_ping(self.port)


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path:
    """bin/ of the newest PostgreSQL under /usr/lib/postgresql."""
    base = Path("/usr/lib/postgresql")
    versions = []
    if base.is_dir():
        for entry in base.iterdir():
            if entry.name.isdigit() and (entry / "bin" / "postgres").exists():
                versions.append((int(entry.name), entry / "bin"))
    if not versions:
        raise ServerError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql; install Debian's "
            "postgresql (`python -m devtools.sysdeps postgresql` as root)"
        )
    return max(versions)[1]


def _user_can_traverse(path: Path, user: str) -> bool:
    """True when `user` can reach `path` (x permission on it and every ancestor)."""
    entry = pwd.getpwnam(user)
    gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for part in [path, *path.parents]:
        st = part.stat()
        if st.st_uid == entry.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in gids:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True


class PostgresServer(ManagedProcess):
    """A throwaway PostgreSQL cluster on 127.0.0.1: superuser `chaosplane`, trust auth,
    database `chaosplane`, durability off for speed.

    As root, initdb/postgres run as the `postgres` user. The cluster lives in `workdir/data`
    when that user can reach it; otherwise (e.g. under pytest's 0700 tmp dirs) in a private
    temp dir that stop() removes.
    """

    name = "postgres"
    start_timeout = 30.0
    stop_signal = signal.SIGINT  # fast shutdown
    user_name = "chaosplane"
    database = "chaosplane"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.bindir = postgres_bindir()
        self._private_dir: Path | None = None
        self.datadir: Path | None = None
        run_as = "postgres" if os.geteuid() == 0 else None
        super().__init__(logfile=self.workdir / "postgres.log", user=run_as)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user_name}@127.0.0.1:{self.port}/{self.database}"

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self.user:
            env["HOME"] = pwd.getpwnam(self.user).pw_dir
            env["USER"] = env["LOGNAME"] = self.user
        return env

    def _prepare_dirs(self) -> tuple[Path, Path]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = self.workdir.resolve()
        if self.user and not _user_can_traverse(base, self.user):
            if self._private_dir is None:
                self._private_dir = Path(tempfile.mkdtemp(prefix="chaosplane-pg-"))
            base = self._private_dir
        datadir, sockdir = base / "data", base / "sock"
        for directory in (datadir, sockdir):
            directory.mkdir(mode=0o700, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            for directory in {base, datadir, sockdir} if self._private_dir else {datadir, sockdir}:
                os.chown(directory, entry.pw_uid, entry.pw_gid)
        return datadir, sockdir

    def _run_as_owner(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        if self.user:
            entry = pwd.getpwnam(self.user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=self._child_env(),
            cwd=self.datadir,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def start(self, wait: bool = True) -> PostgresServer:
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        self.datadir, sockdir = self._prepare_dirs()
        fresh = not (self.datadir / "PG_VERSION").exists()
        if fresh:
            result = self._run_as_owner(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    f"--username={self.user_name}",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ]
            )
            if result.returncode != 0:
                raise ServerError(f"initdb failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        # Unix socket paths are limited to ~107 bytes; fall back to TCP only when too long.
        socket_dir = str(sockdir) if len(str(sockdir)) < 90 else ""
        self.argv = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={socket_dir}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        self.env = self._child_env()
        self.cwd = self.datadir
        super().start(wait=False)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        super().wait_ready(timeout)
        result = subprocess.run(
            [
                str(self.bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user_name,
                self.database,
            ],
            capture_output=True,
            text=True,
            env=self._child_env(),
            timeout=30,
            check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            self.stop()
            raise ServerError(f"createdb {self.database} failed:\n{result.stderr}")

    def is_ready(self) -> bool:
        result = subprocess.run(
            [
                str(self.bindir / "pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user_name,
                "-d",
                "postgres",
                "-t",
                "1",
            ],
            env=self._child_env(),
            check=False,
        )
        return result.returncode == 0

    def _send_stop(self, proc: subprocess.Popen[bytes]) -> None:
        # Only the postmaster: it shuts its backends down itself. Backends are their own
        # process groups, so remember them for the (normally no-op) cleanup in _after_stop.
        self._backends = children(proc.pid)
        try:
            os.kill(proc.pid, self.stop_signal)
        except ProcessLookupError:
            pass

    def _after_stop(self) -> None:
        postgres = os.path.realpath(self.bindir / "postgres")
        for pid in getattr(self, "_backends", []):
            try:
                if os.readlink(f"/proc/{pid}/exe") == postgres:  # not a recycled pid
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self._backends = []
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None


# --------------------------------------------------------------------------- Celery


class CeleryWorker(ManagedProcess):
    """`celery -A config worker` (solo pool), ready when its log says so."""

    name = "worker"
    start_timeout = 60.0
    stop_timeout = 15.0

    def __init__(
        self,
        env: Mapping[str, str],
        cwd: Path,
        logfile: Path,
        extra_args: Iterable[str] = (),
    ) -> None:
        self.hostname = f"worker-{uuid.uuid4().hex[:8]}@%h"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-l",
            "info",
            "--without-mingle",
            "--without-gossip",
            "-n",
            self.hostname,
            *extra_args,
        ]
        env = dict(env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        super().__init__(argv, logfile=logfile, env=env, cwd=cwd)

    def is_ready(self) -> bool:
        return " ready." in self.log_text()
