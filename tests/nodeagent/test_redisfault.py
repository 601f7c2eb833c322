"""PhysicalMachineChaos redis-* against a real redis-server (and a real Sentinel) on 127.0.0.1, started
by the test on free ports: maxmemory lowered then put back, TTLs set, misses counted in INFO stats, a
Sentinel stopped and started again as the user it ran as; refusals name the field and change nothing;
an agent killed mid-fault is undone by a fresh process."""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.servers import ManagedProcess, RedisServer, free_port, redis_ping
from nodeagent.executors import files_paths as fp
from nodeagent.executors import inject, recover, redisfault
from nodeagent.executors.redisfault_resp import Connection
from nodeagent.orders import FaultOrder, Refused
from tests.nodeagent.netns import fault_id
from tests.nodeagent.test_files import inject_in_child_then_kill

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server")
pytestmark = needs_redis


def order(action: str, **fields: object) -> FaultOrder:
    return FaultOrder(fault_id(), "PhysicalMachineChaos", action, {action: fields})


def refused(o: FaultOrder, field: str) -> str:
    with pytest.raises(Refused) as info:
        inject(o)
    assert str(info.value).startswith(f"{field}:"), info.value
    recover(o)
    return str(info.value)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(fp.STATE_ENV, str(tmp_path / "state"))
    yield tmp_path / "state"
    assert fp.state_files(redisfault.FAMILY) == [], "state files left"


@pytest.fixture
def redis(tmp_path: Path, state: Path) -> Iterator[Connection]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        with Connection("127.0.0.1", server.port) as conn:
            conn.port = server.port  # type: ignore[attr-defined]
            yield conn
    finally:
        server.stop()


def addr(conn: Connection) -> str:
    return f"127.0.0.1:{conn.port}"  # type: ignore[attr-defined]


def maxmemory(conn: Connection) -> int:
    return int(conn.call("CONFIG", "GET", "maxmemory")[1])


def info(conn: Connection, section: str) -> dict[str, str]:
    text = conn.call("INFO", section).decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


# redis-cacheLimit ---------------------------------------------------------------------------------------


def test_cache_limit_by_share_then_restored(redis: Connection, state: Path) -> None:
    redis.call("CONFIG", "SET", "maxmemory", 100 * 2**20)
    o = order("redis-cacheLimit", addr=addr(redis), percent="25")
    print(inject(o))
    assert maxmemory(redis) == 25 * 2**20
    assert os.listdir(state / "redis") == [f"{o.fault_id}.json"]
    recover(o)
    assert maxmemory(redis) == 100 * 2**20
    recover(o)
    assert maxmemory(redis) == 100 * 2**20


def test_cache_limit_by_size_then_restored(redis: Connection) -> None:
    assert maxmemory(redis) == 0
    o = order("redis-cacheLimit", addr=addr(redis), cacheSize="10MiB")
    print(inject(o))
    assert maxmemory(redis) == 10 * 2**20
    recover(o)
    assert maxmemory(redis) == 0


def test_cache_limit_refusals(redis: Connection) -> None:
    print(refused(order("redis-cacheLimit", addr=addr(redis), percent="50"), "percent"))  # of no limit
    print(refused(order("redis-cacheLimit", addr=addr(redis)), "cacheSize"))
    print(refused(order("redis-cacheLimit", addr=addr(redis), cacheSize="1MiB", percent="5"), "cacheSize"))
    print(refused(order("redis-cacheLimit", addr="127.0.0.1", cacheSize="1MiB"), "addr"))
    print(refused(order("redis-cacheLimit", addr="127.0.0.1:1;FLUSHALL", cacheSize="1MiB"), "addr"))
    print(refused(order("redis-cacheLimit", addr=addr(redis), cacheSize="1MiB", password="hunter2"), "password"))
    print(refused(order("redis-cacheLimit", addr=f"127.0.0.1:{free_port()}", cacheSize="1MiB"), "addr"))
    assert maxmemory(redis) == 0


def test_a_redis_that_asks_for_a_password_is_refused(redis: Connection) -> None:
    redis.call("CONFIG", "SET", "requirepass", "s3cret-for-the-test")
    try:
        with Connection("127.0.0.1", redis.port) as other:  # type: ignore[attr-defined]
            message = refused(order("redis-cacheLimit", addr=addr(redis), cacheSize="1MiB"), "addr")
            print(message)
            assert "password" in message
            other.call("AUTH", "s3cret-for-the-test")
            assert maxmemory(other) == 0
    finally:
        redis.call("CONFIG", "SET", "requirepass", "")


# redis-expiration, redis-penetration (one-shot) ---------------------------------------------------------


def test_expiration_of_one_key_then_of_all(redis: Connection) -> None:
    for key in ("a", "b", "c"):
        redis.call("SET", key, "1")
    redis.call("PEXPIRE", "c", 500_000)
    print(inject(order("redis-expiration", addr=addr(redis), key="a", expiration="1m0s")))
    assert 0 < redis.call("PTTL", "a") <= 60_000
    assert redis.call("PTTL", "b") == -1
    o = order("redis-expiration", addr=addr(redis), expiration="2m0s", option="NX")  # only keys without one
    print(inject(o))
    assert 0 < redis.call("PTTL", "a") <= 60_000
    assert 60_000 < redis.call("PTTL", "b") <= 120_000
    assert 120_000 < redis.call("PTTL", "c") <= 500_000
    recover(o)  # one-shot: nothing put back
    assert redis.call("PTTL", "b") > 0
    print(inject(order("redis-expiration", addr=addr(redis), key="b")))  # default: at once
    assert redis.call("EXISTS", "b") == 0


def test_expiration_of_many_keys_through_scan(redis: Connection) -> None:
    redis.pipeline([("SET", f"k{i}", "v") for i in range(2500)])
    print(line := inject(order("redis-expiration", addr=addr(redis), expiration="10m0s")))
    assert "2500 of 2500" in line
    ttls = redis.pipeline([("PTTL", f"k{i}") for i in range(2500)])
    assert all(0 < t <= 600_000 for t in ttls)


def test_penetration_sends_the_requests_as_misses(redis: Connection) -> None:
    before = int(info(redis, "stats")["keyspace_misses"])
    o = order("redis-penetration", addr=addr(redis), requestNum=2345)
    print(inject(o))
    assert int(info(redis, "stats")["keyspace_misses"]) - before == 2345
    assert redis.call("DBSIZE") == 0
    recover(o)


# Sentinel: redis-stop, redis-restart ------------------------------------------------------------------


@pytest.fixture
def sentinel(state: Path) -> Iterator[tuple[int, str, int]]:
    """A Sentinel run as `nobody` from a config it owns: (port, config path, uid). Whatever Sentinel
    answers on the port at the end (the one recovery started) is stopped too."""
    nobody = pwd.getpwnam("nobody")
    work = tempfile.mkdtemp(prefix="chaosplane-sentinel-", dir="/var/tmp")  # nobody can reach it there
    os.chown(work, nobody.pw_uid, nobody.pw_gid)
    port = free_port()
    conf = os.path.join(work, "sentinel.conf")
    with open(conf, "w") as f:
        f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {work}\n")
    os.chown(conf, nobody.pw_uid, nobody.pw_gid)
    server = ManagedProcess([shutil.which("redis-server") or "redis-server", conf, "--sentinel"],
                            logfile=Path(work) / "log", name="sentinel", user="nobody",
                            ready=lambda _: redis_ping(port))
    server.start()
    try:
        yield port, conf, nobody.pw_uid
    finally:
        server.stop()
        with contextlib.suppress(OSError, ValueError), Connection("127.0.0.1", port) as conn:
            os.kill(int(info(conn, "server")["process_id"]), signal.SIGKILL)
        shutil.rmtree(work)


def sentinel_pid(port: int) -> int:
    with Connection("127.0.0.1", port) as conn:
        return int(info(conn, "server")["process_id"])


def uid_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}").st_uid


def test_restart_stops_the_sentinel_and_starts_it_again(sentinel: tuple[int, str, int]) -> None:
    port, conf, uid = sentinel
    old = sentinel_pid(port)
    o = order("redis-restart", addr=f"127.0.0.1:{port}", conf=conf, flushConfig=True)
    print(inject(o))
    new = sentinel_pid(port)
    assert new != old and redisfault._gone(old)
    assert uid_of(new) == uid
    recover(o)  # one-shot: nothing to undo, the Sentinel keeps running
    assert sentinel_pid(port) == new


def test_stop_then_recovery_starts_it(sentinel: tuple[int, str, int]) -> None:
    port, conf, uid = sentinel
    old = sentinel_pid(port)
    o = order("redis-stop", addr=f"127.0.0.1:{port}")  # conf left out: the one it runs with
    print(inject(o))
    assert not redis_ping(port)
    recover(o)
    new = sentinel_pid(port)
    assert new != old and uid_of(new) == uid
    recover(o)
    assert sentinel_pid(port) == new


def test_stop_refusals_stop_nothing(sentinel: tuple[int, str, int], redis: Connection) -> None:
    port, conf, _ = sentinel
    print(refused(order("redis-stop", addr=addr(redis), conf=conf), "addr"))  # a plain Redis server
    print(refused(order("redis-stop", addr=f"127.0.0.1:{port}", conf="/etc/redis/other.conf"), "conf"))
    print(refused(order("redis-restart", addr=f"127.0.0.1:{port}", conf="relative.conf"), "conf"))
    print(refused(order("redis-stop", addr=f"127.0.0.1:{port}", flushConfig="yes"), "flushConfig"))
    assert redis_ping(port) and redis.call("PING") == "PONG"


# An agent killed mid-fault ----------------------------------------------------------------------------


def test_killed_agent_cache_limit_restored_by_a_fresh_process(redis: Connection) -> None:
    redis.call("CONFIG", "SET", "maxmemory", 64 * 2**20)
    o = order("redis-cacheLimit", addr=addr(redis), cacheSize="1MiB")
    print(inject_in_child_then_kill(o))
    assert maxmemory(redis) == 2**20
    recover(FaultOrder.from_json(o.to_json()))
    assert maxmemory(redis) == 64 * 2**20


def test_killed_agent_stopped_sentinel_started_by_a_fresh_process(sentinel: tuple[int, str, int]) -> None:
    port, _, uid = sentinel
    o = order("redis-stop", addr=f"127.0.0.1:{port}")
    print(inject_in_child_then_kill(o))
    assert not redis_ping(port)
    recover(FaultOrder.from_json(o.to_json()))
    deadline = time.monotonic() + 5
    while not redis_ping(port) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert uid_of(sentinel_pid(port)) == uid


def test_capability() -> None:
    name, available, detail = redisfault.capability()
    print(detail)
    assert (name, available) == ("redis-client", True) and "redis-server at " in detail
