"""PhysicalMachineChaos redis-* actions, as chaosd does them, over a small RESP client of our own
(redisfault_resp: standard library only). `addr` is host:port; there is no password: the catalogue
refuses inline passwords and has no reference to one yet, so a Redis that asks for one is refused.

    redis-expiration   PEXPIRE `expiration` (default 0: at once) on the key `key` (exact name), or on
                       every key of database 0 (SCAN) when none is given, with EXPIRE's NX/XX/GT/LT
                       `option`; one-shot, as in the catalogue: expired keys are gone for good
    redis-penetration  `requestNum` GETs, pipelined, for keys that do not exist (cache misses); one-shot
    redis-cacheLimit   CONFIG SET maxmemory to `cacheSize`, or to `percent` of the current maxmemory
                       (refused when that is 0, i.e. no limit); the original is kept in a state file
                       and put back at recovery
    redis-stop         SENTINEL FLUSHCONFIG (with `flushConfig`) and SHUTDOWN of the Sentinel at addr;
                       at recovery it is started again as `redis-server <conf> --sentinel`
    redis-restart      the same, started again at once; one-shot

Starting a Sentinel again runs no shell string: it is the argv above, with the redis-server on PATH
(chaosd's `redisPath` flag is accepted and ignored), as the user, groups and working directory the
stopped Sentinel had, and only for a Sentinel that is a process of this host (its pid, from INFO,
listens on addr's port here) and runs with the same config file as `conf` (INFO's config_file; `conf`
may be left out). Everything that is needed is recorded in a state file before SHUTDOWN, so a fresh
agent process starts it after the previous one was killed. A plain Redis server (not a Sentinel) is
refused for stop and restart: the catalogue's actions are the Sentinel's, and starting a server needs
its whole command line, which INFO does not give.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from nodeagent.orders import FaultOrder, Refused

from . import files_paths as fp
from . import validate
from .marked import gone
from .network import params
from .redisfault_resp import Connection, RedisError, parse_addr

FAMILY = "redis"
BATCH = 1000
MAX_EXPIRATION_S = 100 * 365 * 86400
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
PATH_ENV = fp.PATH_ENV + ":/usr/local/bin:/usr/local/sbin"

log = logging.getLogger("nodeagent.executors.redis")


def _addr(p: dict[str, Any]) -> tuple[str, int, str]:
    if p.get("password") not in (None, ""):
        raise Refused("password: inline passwords are refused; Chaosplane never keeps credentials in a fault")
    host, port = parse_addr(p.get("addr"))
    return host, port, str(p["addr"])


def _connect(host: str, port: int, shown: str) -> Connection:
    try:
        return Connection(host, port)
    except OSError as error:
        raise Refused(f"addr: cannot reach Redis at {shown}: {error.strerror or error}") from None


def _call(conn: Connection, shown: str, *args: str | bytes | int) -> Any:
    try:
        return conn.call(*args)
    except RedisError as error:
        if str(error).startswith(("NOAUTH", "WRONGPASS")):
            raise Refused(f"addr: the Redis at {shown} asks for a password; the catalogue refuses inline passwords "
                          "and has no reference to one, so this agent cannot log in") from None
        raise Refused(f"addr: {shown} answered {str(args[0])} with: {str(error)[:200]}") from None


def _info(conn: Connection, shown: str, section: str) -> dict[str, str]:
    text = _call(conn, shown, "INFO", section)
    out = {}
    for line in (text.decode(errors="replace") if isinstance(text, bytes) else str(text)).splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def _ping(host: str, port: int) -> bool:
    try:
        with Connection(host, port, timeout=1.0) as conn:
            return conn.call("PING") == "PONG"
    except (OSError, RedisError):
        return False


# redis-expiration, redis-penetration (one-shot) -------------------------------------------------------


def _expiration(order: FaultOrder, p: dict[str, Any]) -> str:
    host, port, shown = _addr(p)
    raw = p.get("expiration")
    ms = 0 if raw in (None, "") else validate.duration_ns(raw, "expiration", MAX_EXPIRATION_S) // 10**6
    key = None if p.get("key") in (None, "") else validate.text(p["key"], "key", 512)
    option = [] if p.get("option") in (None, "") else [validate.choice(p["option"], "option", ("NX", "XX", "GT", "LT"))]
    with _connect(host, port, shown) as conn:
        _call(conn, shown, "PING")
        if key is not None:
            done = _call(conn, shown, "PEXPIRE", key, ms, *option)
            return f"{'set' if done else 'did not set'} an expiry of {ms} ms on key {key[:80]!r} at {shown} (one-shot)"
        cursor, done, seen = b"0", 0, 0
        while True:
            cursor, keys = _call(conn, shown, "SCAN", cursor, "COUNT", BATCH)
            if keys:
                seen += len(keys)
                for reply in conn.pipeline([("PEXPIRE", k, ms, *option) for k in keys]):
                    if isinstance(reply, RedisError):
                        raise Refused(f"option: {shown} answered PEXPIRE with: {str(reply)[:200]}")
                    done += reply
            if cursor in (b"0", "0"):
                break
    return f"set an expiry of {ms} ms on {done} of {seen} key(s) of database 0 at {shown} (one-shot)"


def _penetration(order: FaultOrder, p: dict[str, Any]) -> str:
    host, port, shown = _addr(p)
    n = validate.integer(p.get("requestNum"), "requestNum", 1, 10_000_000)
    prefix = f"chaosplane:penetration:{validate.short_id(order.fault_id)}:{secrets.token_hex(4)}:"
    misses = 0
    with _connect(host, port, shown) as conn:
        _call(conn, shown, "PING")
        for start in range(0, n, BATCH):
            replies = conn.pipeline([("GET", f"{prefix}{i}") for i in range(start, min(n, start + BATCH))])
            for reply in replies:
                if isinstance(reply, RedisError):
                    raise Refused(f"addr: {shown} answered GET with: {str(reply)[:200]}")
                misses += reply is None
    return f"sent {n} GETs for keys {shown} does not have ({misses} missed) (one-shot)"


# redis-cacheLimit ---------------------------------------------------------------------------------------


def _cache_limit(order: FaultOrder, p: dict[str, Any]) -> str:
    host, port, shown = _addr(p)
    size, share = p.get("cacheSize"), p.get("percent")
    if (size in (None, "")) == (share in (None, "")):
        raise Refused("cacheSize: give cacheSize or percent (one of them)")
    if fp.load_state(FAMILY, order.fault_id) is not None:
        return f"maxmemory of {shown} already lowered by this fault"
    with _connect(host, port, shown) as conn:
        reply = _call(conn, shown, "CONFIG", "GET", "maxmemory")
        if not isinstance(reply, list) or len(reply) != 2:
            raise Refused(f"addr: {shown} did not answer CONFIG GET maxmemory with a value")
        original = int(reply[1])
        if share not in (None, ""):
            percent = validate.percent(share, "percent")
            if original == 0:
                raise Refused(f"percent: {shown} has no maxmemory (0: no limit), so a share of it means nothing; "
                              "give cacheSize")
            new = int(original * percent / 100)
            if new < 1:
                raise Refused(f"percent: {percent:g}% of {original} bytes is 0, which Redis reads as no limit")
        else:
            spelled = validate.size(size, "cacheSize")
            if spelled.endswith("%"):
                raise Refused("cacheSize: give bytes (e.g. 256MiB); a share goes in percent")
            new = int(spelled[:-1])
        fp.save_state(FAMILY, order.fault_id, {"action": order.action, "maxmemory": original})
        try:
            _call(conn, shown, "CONFIG", "SET", "maxmemory", new)
        except Refused:
            fp.drop_state(FAMILY, order.fault_id)
            raise
    return f"maxmemory of {shown} set from {original} to {new} bytes; put back at recovery"


def _undo_cache_limit(order: FaultOrder, p: dict[str, Any], state: dict[str, Any]) -> None:
    host, port, shown = _addr(p)
    try:
        conn = Connection(host, port)
    except ConnectionRefusedError:  # not running: its runtime setting went with it
        log.warning("fault %s: Redis at %s is not running; its maxmemory went with it", order.fault_id, shown)
        return
    with conn:
        conn.call("CONFIG", "SET", "maxmemory", int(state["maxmemory"]))


# redis-stop, redis-restart -----------------------------------------------------------------------------


def _redis_server() -> str:
    binary = shutil.which("redis-server", path=PATH_ENV)
    if binary is None:
        raise Refused("redis-server is not installed on this host; it is needed to start the Sentinel again")
    return binary


def _listens(pid: int, port: int) -> bool:
    """True when process `pid` of this host holds a TCP socket listening on `port`."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{cols[9]}]")
        except (OSError, ValueError, StopIteration):
            continue
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def _ids(pid: int) -> tuple[int, int, list[int]]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["Uid"][1]), int(fields["Gid"][1]), [int(g) for g in fields.get("Groups", [])]


_gone = gone  # nodeagent.executors.marked


def _sentinel(conn: Connection, shown: str, port: int, p: dict[str, Any]) -> dict[str, Any]:
    """What starting this Sentinel again takes, after checking it is one and is a process here."""
    info = _info(conn, shown, "server")
    mode = info.get("redis_mode", "?")
    if mode != "sentinel":
        raise Refused(f"addr: {shown} is a Redis in {mode} mode, not a Sentinel; redis-stop and redis-restart act on "
                      "Sentinels")
    pid = validate.pid(info.get("process_id", ""))
    if not _listens(pid, port):
        raise Refused(f"addr: the Sentinel at {shown} is not a process of this host (process {pid} here does not "
                      f"listen on port {port}); it can only be stopped and started from its own host")
    running = info.get("config_file", "")
    conf = running
    if p.get("conf") not in (None, ""):
        conf = fp.abs_path(p["conf"], "conf")
        if os.path.realpath(conf) != os.path.realpath(running or "/"):
            raise Refused(f"conf: the Sentinel at {shown} runs with {running or 'no config file'}, not {conf}")
    if not conf or not os.path.isfile(conf):
        raise Refused(f"conf: the Sentinel at {shown} has no config file to start it again with")
    uid, gid, groups = _ids(pid)
    return {"pid": pid, "conf": conf, "uid": uid, "gid": gid, "groups": groups,
            "cwd": os.readlink(f"/proc/{pid}/cwd")}


def _shutdown(order: FaultOrder, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    host, port, shown = _addr(p)
    flush = p.get("flushConfig", False)
    if not isinstance(flush, bool):
        raise Refused(f"flushConfig: {flush!r:.20} is not true or false")
    _redis_server()
    with _connect(host, port, shown) as conn:
        _call(conn, shown, "PING")
        record = {"action": order.action, **_sentinel(conn, shown, port, p)}
        fp.save_state(FAMILY, order.fault_id, record)  # before SHUTDOWN: a fresh agent can start it
        try:
            if flush:
                _call(conn, shown, "SENTINEL", "FLUSHCONFIG")
            conn.send([("SHUTDOWN",)])
            reply = conn.read()
        except ConnectionError:
            reply = None  # SHUTDOWN closes the connection without a reply when it works
        except Refused:
            fp.drop_state(FAMILY, order.fault_id)
            raise
        if isinstance(reply, RedisError):
            fp.drop_state(FAMILY, order.fault_id)
            raise Refused(f"addr: {shown} refused SHUTDOWN: {str(reply)[:200]}")
    deadline = time.monotonic() + STOP_TIMEOUT
    while not _gone(record["pid"]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Sentinel at {shown} (pid {record['pid']}) did not exit after SHUTDOWN")
        time.sleep(0.02)
    return shown, record


def _start(p: dict[str, Any], record: dict[str, Any]) -> int:
    """redis-server CONF --sentinel as the stopped Sentinel's user, in its directory; its pid once it
    answers PING. Not marked as a fault's process: it is the user's service, not ours to stop."""
    host, port, shown = _addr(p)
    cwd = record["cwd"] if os.path.isdir(record["cwd"]) else "/"
    child = subprocess.Popen(  # an argv list: the binary on PATH, a checked config path, a flag
        [_redis_server(), record["conf"], "--sentinel"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True, cwd=cwd, env={"PATH": PATH_ENV},
        user=int(record["uid"]), group=int(record["gid"]), extra_groups=[int(g) for g in record["groups"]],
    )
    threading.Thread(target=child.wait, name=f"reap-sentinel-{child.pid}", daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not _ping(host, port):
        if child.poll() not in (None, 0) or time.monotonic() > deadline:
            raise RuntimeError(f"the Sentinel at {shown} did not start again "
                               f"(redis-server {record['conf']} --sentinel: exit status {child.poll()})")
        time.sleep(0.02)
    return child.pid


def _stop(order: FaultOrder, p: dict[str, Any]) -> str:
    if fp.load_state(FAMILY, order.fault_id) is not None:
        return "Sentinel already stopped by this fault"
    shown, record = _shutdown(order, p)
    return f"Sentinel at {shown} (pid {record['pid']}) stopped; started again at recovery with {record['conf']}"


def _restart(order: FaultOrder, p: dict[str, Any]) -> str:
    shown, record = _shutdown(order, p)
    pid = _start(p, record)
    fp.drop_state(FAMILY, order.fault_id)
    return f"Sentinel at {shown} stopped (pid {record['pid']}) and started again (pid {pid}) (one-shot)"


def _undo_stop(order: FaultOrder, p: dict[str, Any], state: dict[str, Any]) -> None:
    host, port, shown = _addr(p)
    if _ping(host, port):
        return  # running again (started by someone else, or by a previous recover)
    pid = _start(p, state)
    log.info("fault %s: Sentinel at %s started again (pid %d)", order.fault_id, shown, pid)


# Entry points -----------------------------------------------------------------------------------------

_INJECT: dict[str, Callable[[FaultOrder, dict[str, Any]], str]] = {
    "redis-expiration": _expiration, "redis-penetration": _penetration, "redis-cacheLimit": _cache_limit,
    "redis-stop": _stop, "redis-restart": _restart,
}
_UNDO: dict[str, Callable[[FaultOrder, dict[str, Any], dict[str, Any]], None]] = {
    "redis-cacheLimit": _undo_cache_limit, "redis-stop": _undo_stop, "redis-restart": _undo_stop,
}


def inject(order: FaultOrder) -> str:
    validate.fault_id(order.fault_id)
    action = _INJECT.get(order.action)
    if action is None:
        raise Refused(f"{order.action[:40]} is not a Redis action")
    if order.target.kind != "host":
        raise Refused("Redis actions take a host target (the Redis is reached at addr)")
    return action(order, params(order))


def recover(order: FaultOrder) -> None:
    """Undo what the state file says; nothing for one-shot actions, refused or never-applied faults. A
    Redis that cannot be reached raises, and the runtime tries again."""
    state = fp.load_state(FAMILY, order.fault_id)
    undo = _UNDO.get(order.action)
    if state is None or undo is None:
        return
    undo(order, params(order), state)
    fp.drop_state(FAMILY, order.fault_id)


def capability() -> tuple[str, bool, str]:
    """"redis-client": the RESP client is the standard library's socket, so always there; starting a
    Sentinel again (redis-stop, redis-restart) also needs redis-server on PATH."""
    binary = shutil.which("redis-server", path=PATH_ENV)
    start = f"redis-server at {binary}" if binary else "no redis-server on PATH: redis-stop and redis-restart refused"
    return "redis-client", True, f"RESP over TCP (standard library); {start}"


#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]] = {
    ("PhysicalMachineChaos", name): (inject, recover) for name in _INJECT
}
