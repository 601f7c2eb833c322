"""A real webhook receiver on localhost for the tests: a ThreadingHTTPServer in a thread that records
every request (path, headers, raw body) and answers with the statuses it was told to, in order."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), "")


class Receiver:
    """Answers `statuses` in order, then `default` for ever, each after `delay` seconds."""

    def __init__(self, statuses: list[int] | None = None, default: int = 200, delay: float = 0.0) -> None:
        self.statuses, self.default, self.delay = list(statuses or []), default, delay
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(Received("POST", self.path, dict(self.headers.items()), body))
                    code = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                time.sleep(receiver.delay)  # a slow receiver: attempts overlap
                if 300 <= code < 400:
                    self.send_response(code)
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                text = (b"ok" if code < 300 else b"receiver says no: " + b"x" * 2000)
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/chaos-s3cr3t-path"

    def events(self) -> list[str]:
        return [r.header("X-Chaosplane-Event") for r in self.requests]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.requests)


@contextmanager
def receiver(statuses: list[int] | None = None, default: int = 200, delay: float = 0.0) -> Iterator[Receiver]:
    r = Receiver(statuses, default, delay)
    thread = threading.Thread(target=r.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
        thread.join(5)
