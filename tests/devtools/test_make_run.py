"""`make run`'s runner for real: it brings every part up (healthz says so), prints the demo owner's
password on the first run only, and leaves nothing running after Ctrl-C. It runs beside anything on
the machine: its own Redis port, web port, gateway port, data directory and SQLite file.

As root on Linux it also runs a local node agent and a demo service in the network namespace
`chaosplane-demo` (fixed names: one such run per machine), and removes both when it stops."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools import demo, run
from devtools.servers import free_port, port_open
from tests.nodeagent.netns import needs_root

REPO = Path(__file__).resolve().parents[2]
DEMO_EXPERIMENTS = {"demo-partition", "demo-loss", "demo-cpu-stress", "demo-kill"}


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


def demo_leftovers() -> list[str]:
    """The demo's namespace and host link, if they exist (nothing to look at without iproute2)."""
    if shutil.which("ip") is None:
        return []
    found = []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
    if demo.NETNS in listed:
        found.append(f"network namespace {demo.NETNS}")
    if subprocess.run(["ip", "link", "show", "dev", demo.HOST_IF], capture_output=True, check=False).returncode == 0:
        found.append(f"link {demo.HOST_IF}")
    return found


def remove_demo_leftovers() -> None:
    subprocess.run(["ip", "netns", "del", demo.NETNS], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", "dev", demo.HOST_IF], capture_output=True, check=False)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; the runner's output:\n"
                         f"{log.read_text()[-4000:]}")


def healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


def interrupt(runner: subprocess.Popen[bytes]) -> None:
    """What Ctrl-C in the terminal does: SIGINT to the runner's process group; then wait for it."""
    if runner.poll() is None:
        try:
            os.killpg(runner.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    runner.wait(timeout=90)


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
        interrupt(runner)
    return log.read_text()


@pytest.mark.integration
def test_make_run_starts_everything_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    marker = f"CHAOSPLANE_RUN_TEST={uuid.uuid4().hex}"
    port, redis_port, gateway_port = free_port(), free_port(), free_port()
    env = dict(
        os.environ,
        CHAOSPLANE_VAR=str(tmp_path / "var"),
        CHAOSPLANE_PORT=str(port),
        CHAOSPLANE_GATEWAY_PORT=str(gateway_port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'chaosplane.sqlite3'}",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        CHAOSPLANE_RUN_TEST=marker.split("=", 1)[1],
    )
    env.pop("SECRET_KEY", None)  # make run uses the development key with DEBUG on

    first = run_until_healthy(env, tmp_path / "first.log", port, marker)
    assert first.count("password for admin (shown once)") == 1
    for part in ("redis", "setup", "web", "worker", "beat", "gateway", "demo"):
        assert re.search(rf"^ *{part} \| ", first, re.MULTILINE), part
    assert (tmp_path / "var" / "certs" / "ca.pem").is_file()
    assert processes_with(marker) == [], first[-2000:]
    assert not port_open(redis_port) and not port_open(port) and not port_open(gateway_port)
    assert demo_leftovers() == [], first[-2000:]

    second = run_until_healthy(env, tmp_path / "second.log", port, marker)
    assert "password" not in second
    assert "server_key: " not in second  # manage.py devcerts ran once, on the first run
    assert processes_with(marker) == []
    assert not port_open(redis_port) and not port_open(port) and not port_open(gateway_port)
    assert demo_leftovers() == [], second[-2000:]


def test_without_root_the_agent_and_the_demo_say_why_they_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = demo.unsupported_reason()
    assert reason is not None and "root" in reason
    block = run.try_it([{"name": "demo-kill", "id": "x", "action": "process"}], reason)
    assert f"skipped: {reason}" in block and demo.SERVICE_URL not in block
    assert "/api/v1/tenants/demo/experiments/<id>/runs/" in block and "demo-kill" in block
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "Linux" in (demo.unsupported_reason() or "")


def demo_service_pids(marker: str) -> list[int]:
    return [pid for pid in processes_with(marker) if _comm(pid) == demo.SERVICE_COMM]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def fetch(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own demo service
            return response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def platform_db(path: Path, sql: str, *args: Any) -> list[tuple]:
    with sqlite3.connect(path, timeout=10) as db:
        return db.execute(sql, args).fetchall()


@pytest.mark.integration
@needs_root
def test_as_root_make_run_adds_a_gateway_a_local_agent_and_a_demo_service(tmp_path: Path) -> None:
    holder = demo.acquire_lock()
    if holder is None:
        pytest.skip("another make run on this machine has the demo network (chaosplane-demo, cpdemo0)")
    holder.close()
    marker = f"CHAOSPLANE_RUN_TEST={uuid.uuid4().hex}"
    port, redis_port, gateway_port = free_port(), free_port(), free_port()
    database = tmp_path / "chaosplane.sqlite3"
    env = dict(
        os.environ,
        CHAOSPLANE_VAR=str(tmp_path / "var"),
        CHAOSPLANE_PORT=str(port),
        CHAOSPLANE_GATEWAY_PORT=str(gateway_port),
        DATABASE_URL=f"sqlite:///{database}",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        CHAOSPLANE_RUN_TEST=marker.split("=", 1)[1],
    )
    env.pop("SECRET_KEY", None)
    log = tmp_path / "run.log"
    # What a crashed run leaves: the namespace with a process still in it, and the host link (here a veth
    # whose peer is on the host too, so that only deleting the link removes it). The runner removes them.
    remove_demo_leftovers()
    subprocess.run(["ip", "netns", "add", demo.NETNS], check=True)
    subprocess.run(["ip", "link", "add", demo.HOST_IF, "type", "veth", "peer", "name", "cpdemotest"], check=True)
    orphan = subprocess.Popen(["ip", "netns", "exec", demo.NETNS, "sleep", "600"], start_new_session=True)
    try:
        with open(log, "wb") as out:
            runner = subprocess.Popen(
                [sys.executable, "-m", "devtools.run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(lambda: "Try it:" in log.read_text() or runner.poll() is not None, 120, "everything up", log)
            assert runner.poll() is None, log.read_text()[-4000:]
            output = log.read_text()
            assert (f"removed what an earlier run left: process {orphan.pid}, network namespace chaosplane-demo, "
                    "link cpdemo0") in output
            assert orphan.wait(5) == -signal.SIGKILL
            assert "skipped" not in output

            # The gateway listens where it was told, and the agent `local` of demo/local is connected through it.
            assert port_open(gateway_port)
            rows = wait_for(lambda: platform_db(
                database,
                "SELECT a.connected, a.labels FROM injector_agent a "
                "JOIN injector_environment e ON a.environment_id = e.id JOIN tenants_tenant t ON e.tenant_id = t.id "
                "WHERE t.slug = 'demo' AND e.name = 'local' AND e.kind = 'hosts' AND a.name = 'local' AND a.connected",
            ), 30, "the agent row to say connected", log)
            assert json.loads(rows[0][1]) == {"chaosplane.io/role": "demo"}

            # The demo service answers from its namespace through the veth.
            assert fetch(demo.SERVICE_URL) == demo.SERVICE_ANSWER

            # The ready-made experiments, once each.
            names = platform_db(
                database,
                "SELECT x.name, x.kind FROM experiments_experiment x JOIN tenants_tenant t ON x.tenant_id = t.id "
                "WHERE t.slug = 'demo'",
            )
            assert sorted(names) == sorted((name, "PhysicalMachineChaos") for name in DEMO_EXPERIMENTS)
            # The demo workflow, and the demo schedule made paused (nothing fires behind anyone's back).
            assert platform_db(database, "SELECT w.name FROM experiments_workflow w JOIN tenants_tenant t ON "
                                         "w.tenant_id = t.id WHERE t.slug = 'demo'") == [(demo.WORKFLOW["name"],)]
            assert platform_db(database, "SELECT s.name, s.paused FROM experiments_schedule s JOIN tenants_tenant t "
                                         "ON s.tenant_id = t.id WHERE t.slug = 'demo'") == [(demo.SCHEDULE["name"], 1)]

            # The registration token reached the agent in its environment only: not in argv, not in any output.
            agents = [pid for pid in processes_with(marker) if b"nodeagent" in _cmdline(pid)]
            assert agents and all(b"cpr_" not in _cmdline(pid) for pid in agents)
            for text in [output, *(p.read_text() for p in (tmp_path / "var" / "log").glob("*.log"))]:
                assert "cpr_" not in text

            # Killed (as demo-kill does, by its name), the demo service comes back.
            [first] = demo_service_pids(marker)
            os.kill(first, signal.SIGKILL)
            wait_for(lambda: "killed by SIGKILL; starting it again" in log.read_text(), 10, "the restart notice", log)
            wait_for(lambda: fetch(demo.SERVICE_URL) == demo.SERVICE_ANSWER, 20, "the demo service again", log)
            assert demo_service_pids(marker) not in ([], [first])
        finally:
            interrupt(runner)
        output = log.read_text()
        assert "removed network namespace chaosplane-demo" in output, output[-3000:]
        assert processes_with(marker) == [], output[-3000:]
        assert not port_open(gateway_port) and not port_open(port) and not port_open(redis_port)
        assert demo_leftovers() == [], output[-3000:]
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        left = demo_leftovers()
        remove_demo_leftovers()
        assert left == [], f"left behind: {left}"
