"""A small Redis client over one TCP socket, speaking RESP2 with the standard library only (the agent's
dependencies stay small): commands as argument lists, pipelines, and replies parsed into Python values.
Error replies come back as RedisError objects in pipelines and are raised by call()."""
from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import Any

from nodeagent.orders import Refused

from . import validate

MAX_BULK = 512 * 2**20  # Redis's own limit on one string


class RedisError(Exception):
    """An error reply (-ERR ..., -NOAUTH ...)."""


def parse_addr(value: Any, what: str = "addr") -> tuple[str, int]:
    """host:port or [v6]:port, checked."""
    text = validate.text(value, what, 260)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise Refused(f"{what}: {text!r:.80} is not [IPv6]:port")
        host = str(validate.address(host))
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise Refused(f"{what}: {text!r:.80} is not host:port")
        try:
            host = str(validate.address(host))
        except Refused:
            host = validate.hostname(host)
    try:
        return host, validate.port(port)
    except Refused:
        raise Refused(f"{what}: {text!r:.80} has no port from 1 to 65535") from None


def _encode(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Connection:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, commands: Iterable[Sequence[str | bytes | int]]) -> None:
        self.sock.sendall(b"".join(_encode(c) for c in commands))

    def read(self) -> Any:
        line = self.file.readline(MAX_BULK)
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the connection was closed")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode(errors="replace")
        if kind == b"-":
            return RedisError(body.decode(errors="replace"))
        if kind == b":":
            return int(body)
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None
            if n > MAX_BULK:
                raise ConnectionError(f"a {n}-byte reply is more than Redis sends")
            data = self.file.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("the connection was closed")
            return data[:-2]
        if kind == b"*":
            n = int(body)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"not a RESP reply: {line[:40]!r}")

    def pipeline(self, commands: Sequence[Sequence[str | bytes | int]]) -> list[Any]:
        self.send(commands)
        return [self.read() for _ in commands]

    def call(self, *args: str | bytes | int) -> Any:
        reply = self.pipeline([args])[0]
        if isinstance(reply, RedisError):
            raise reply
        return reply
