"""A real HTTP server for status checks to probe: it answers every GET with the status the test sets
(`server.status = 503` makes it start failing) and counts the requests it got."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CheckServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/health"


class _Handler(BaseHTTPRequestHandler):
    server: CheckServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.requests += 1
        body = b"ok" if self.server.status < 400 else b"failing"
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def check_server() -> Iterator[CheckServer]:
    server = CheckServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def http_check(url: str, **fields: Any) -> dict[str, Any]:
    """A StatusCheck spec probing `url` (Synchronous, one probe a second, one failure fails it)."""
    return {"type": "HTTP", "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1,
            "http": {"url": url, "criteria": {"statusCode": "200"}}} | fields
