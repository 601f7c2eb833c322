"""A local emulator of the Prometheus query API: real HTTP on 127.0.0.1 (port 0), answering
`GET|POST {prefix}/api/v1/query` in the JSON format of Prometheus's HTTP API
(https://prometheus.io/docs/prometheus/latest/querying/api/). It does not evaluate PromQL: every query
gets the answer the test set, and the queries asked are recorded.

    with FakePrometheus() as prometheus:
        prometheus.set_vector(({"__name__": "up", "job": "shop"}, 1))
        probe({... "prometheus": {"server": prometheus.url, "query": "up", ...}})
        assert prometheus.queries == ["up"]

Answers: `set_vector(...)` (an instant vector; no samples when empty), `set_scalar(v)`, `set_matrix()`
(a range vector, which a status check cannot compare), `set_error(...)` (Prometheus's error envelope
with its HTTP status), and `set_raw(...)` for what no Prometheus sends (not JSON, too large).
"""
from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes import ServedFake

Labels = dict[str, str]


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: "1", "0.25", "NaN", "+Inf"."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class FakePrometheus(ServedFake):
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        self.queries: list[str] = []
        self._lock = threading.Lock()
        self._answer: tuple[int, str, bytes] = (200, "application/json", b"")
        self.set_vector()

    # -- answers --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to a fresh start: no samples, no queries recorded (for a fake shared by many tests)."""
        with self._lock:
            self.queries.clear()
        self.set_vector()

    def set_vector(self, *samples: tuple[Labels, float]) -> None:
        """An instant vector of (labels, value) samples; none at all is a query that matched nothing."""
        now = time.time()
        result = [{"metric": dict(labels), "value": [now, format_value(value)]} for labels, value in samples]
        self._set_success({"resultType": "vector", "result": result})

    def set_value(self, value: float, **labels: str) -> None:
        """One sample: `set_value(0, __name__="up", job="shop")`."""
        self.set_vector((labels, value))

    def set_scalar(self, value: float) -> None:
        self._set_success({"resultType": "scalar", "result": [time.time(), format_value(value)]})

    def set_matrix(self) -> None:
        now = time.time()
        series = {"metric": {"__name__": "up"}, "values": [[now - 15, "1"], [now, "1"]]}
        self._set_success({"resultType": "matrix", "result": [series]})

    def set_error(self, message: str, error_type: str = "bad_data", status: int = 400) -> None:
        """Prometheus's error envelope (bad_data is a 400, execution a 422, timeout a 503)."""
        body = {"status": "error", "errorType": error_type, "error": message}
        self.set_raw(json.dumps(body).encode(), status=status)

    def set_raw(self, body: bytes, status: int = 200, content_type: str = "application/json") -> None:
        with self._lock:
            self._answer = (status, content_type, body)

    def _set_success(self, data: dict[str, Any]) -> None:
        self.set_raw(json.dumps({"status": "success", "data": data}).encode())

    # -- server ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server URL a status check names (with the prefix, if any)."""
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def start(self) -> FakePrometheus:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                fake._serve(self, urlsplit(self.path).query)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                fake._serve(self, self.rfile.read(length).decode())

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler), "fake-prometheus")
        return self

    def _serve(self, handler: BaseHTTPRequestHandler, form: str) -> None:
        if urlsplit(handler.path).path != f"{self.prefix}/api/v1/query":
            self._send(handler, 404, "text/plain; charset=utf-8", b"404 page not found\n")
            return
        query = parse_qs(form).get("query", [""])[-1]
        if not query:
            body = {"status": "error", "errorType": "bad_data",
                    "error": 'invalid parameter "query": 1:1: parse error: no expression found in input'}
            self._send(handler, 400, "application/json", json.dumps(body).encode())
            return
        with self._lock:
            self.queries.append(query)
            status, content_type, body_bytes = self._answer
        self._send(handler, status, content_type, body_bytes)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (a probe reads at most 1 MiB)
