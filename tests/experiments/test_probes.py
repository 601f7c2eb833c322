"""One probe of a status check, against real servers on 127.0.0.1: an HTTP target that answers as it
is told (a status, slowly, trickling, not at all) and records what it was sent, and the local
Prometheus query API emulator. Then Chaos Mesh's thresholds over rows of probes. No database."""
from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from experiments.probes import BODY_LIMIT, Outcome, Thresholds, codes_match, probe
from injector.manifests import STATUS_CHECK_SPEC
from tests.fakes.prometheus import FakePrometheus

# An HTTP target -----------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Target:
    """What the target does with the next requests: `behaviour` is "answer" (with `status`, after
    `delay` seconds), "close" (hang up without a word), "trickle" (a status line, then a header one
    byte every 0.1 s for 3 s) or "garbage" (a line that is not HTTP)."""

    status: int = 200
    delay: float = 0.0
    behaviour: str = "answer"
    location: str | None = None
    received: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def paths(self) -> list[str]:
        return [r.path for r in self.received]


def _handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def handle_request(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target.received.append(Received(self.command, self.path, list(self.headers.items()), body))
            if target.behaviour == "close":
                self.close_connection = True
            elif target.behaviour == "garbage":
                self.wfile.write(b"hello there\r\n\r\n")
            elif target.behaviour == "trickle":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(30):  # 3 s of it, then the rest of the answer
                    if target.stop.wait(0.1):
                        return
                    self.wfile.write(b"z")
                    self.wfile.flush()
                self.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")
            else:
                target.stop.wait(target.delay)
                self.send_response(target.status)
                if target.location:
                    self.send_header("Location", target.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        do_GET = do_POST = handle_request  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def target() -> Iterator[Target]:
    state = Target()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    state.stop.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus_server() -> Iterator[FakePrometheus]:
    with FakePrometheus() as fake:
        yield fake


@pytest.fixture
def prometheus(prometheus_server: FakePrometheus) -> FakePrometheus:
    prometheus_server.reset()
    return prometheus_server


def http_check(url: str, criteria: str = "200-399", timeout: int = 1, **http: Any) -> dict[str, Any]:
    """A canonical spec, as STATUS_CHECK_SPEC.parse gives it (so only valid specs are probed)."""
    check = {"url": url, "criteria": {"statusCode": criteria}, **http}
    return STATUS_CHECK_SPEC.parse({"type": "HTTP", "timeoutSeconds": timeout, "http": check}, "spec")


def prometheus_check(server: str, query: str = 'up{job="x"}', comparison: str = ">", threshold: float = 0,
                     timeout: int = 1) -> dict[str, Any]:
    query_spec = {"server": server, "query": query, "comparison": comparison, "threshold": threshold}
    return STATUS_CHECK_SPEC.parse({"type": "Prometheus", "timeoutSeconds": timeout, "prometheus": query_spec}, "spec")


def timed(spec: dict[str, Any]) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = probe(spec)
    return outcome, time.monotonic() - started


# HTTP ---------------------------------------------------------------------------------------------


def test_an_expected_code_passes_with_its_latency(target: Target) -> None:
    outcome = probe(http_check(target.url + "/health"))
    assert outcome.ok
    assert re.fullmatch(r"HTTP 200 in \d+ ms", outcome.detail)
    assert 0 < outcome.latency_ms < 1000
    assert target.paths() == ["/health"]


def test_an_unexpected_code_fails_naming_the_codes_expected(target: Target) -> None:
    target.status = 503
    assert probe(http_check(target.url)) == Outcome(False, pytest.approx(0, abs=1000), "HTTP 503 (expected 200-399)")


def test_a_list_of_codes_and_ranges_is_matched_part_by_part(target: Target) -> None:
    target.status = 204
    assert probe(http_check(target.url, "200,204,300-399")).ok
    target.status = 201
    assert probe(http_check(target.url, "200,204,300-399")).detail == "HTTP 201 (expected 200,204,300-399)"


def test_a_get_by_default_sends_no_body(target: Target) -> None:
    probe(http_check(target.url + "/x?y=1"))
    (request,) = target.received
    assert (request.method, request.path, request.body) == ("GET", "/x?y=1", b"")
    names = [name.lower() for name, _ in request.headers]
    assert "content-length" not in names and "host" in names


def test_the_method_headers_and_body_are_sent_as_written(target: Target) -> None:
    headers = {"X-Token": ["secret"], "Accept": ["text/plain", "application/json"]}
    probe(http_check(target.url + "/orders", method="POST", headers=headers, body='{"item": "café"}'))
    (request,) = target.received
    assert request.method == "POST"
    assert ("X-Token", "secret") in request.headers
    assert [v for n, v in request.headers if n == "Accept"] == ["text/plain", "application/json"]
    assert request.body == '{"item": "café"}'.encode()
    assert ("Content-Length", str(len(request.body))) in request.headers


def test_credentials_in_the_url_are_sent_as_basic_auth(target: Target) -> None:
    probe(http_check(target.url.replace("://", "://probe:p%40ss@") + "/"))
    (request,) = target.received
    assert ("Authorization", "Basic " + base64.b64encode(b"probe:p@ss").decode()) in request.headers


def test_redirects_are_not_followed(target: Target) -> None:
    target.status, target.location = 302, target.url + "/elsewhere"
    assert probe(http_check(target.url + "/start", "200")).detail == "HTTP 302 (expected 200)"
    assert probe(http_check(target.url + "/start", "300-399")).ok
    assert target.paths() == ["/start", "/start"]


def test_a_slow_server_fails_when_timeout_seconds_have_passed(target: Target) -> None:
    target.delay = 5
    outcome, elapsed = timed(http_check(target.url, timeout=1))
    assert (outcome.ok, outcome.detail) == (False, "timed out after 1 s")
    assert 0.9 < elapsed < 1.5
    assert 900 < outcome.latency_ms < 1500


def test_a_server_answering_within_the_timeout_passes(target: Target) -> None:
    target.delay = 0.3
    outcome = probe(http_check(target.url, timeout=1))
    assert outcome.ok and 300 <= outcome.latency_ms < 1000


def test_the_timeout_bounds_the_whole_request_not_each_read(target: Target) -> None:
    # A byte every 0.1 s never lets a single read wait a second: only a deadline on the whole stops it.
    target.behaviour = "trickle"
    outcome, elapsed = timed(http_check(target.url, timeout=1))
    assert (outcome.ok, outcome.detail) == (False, "timed out after 1 s")
    assert 0.9 < elapsed < 1.5


def test_a_server_that_hangs_up_fails(target: Target) -> None:
    target.behaviour = "close"
    assert probe(http_check(target.url)).detail == "connection closed without a response"


def test_an_answer_that_is_not_http_fails(target: Target) -> None:
    target.behaviour = "garbage"
    outcome = probe(http_check(target.url))
    assert not outcome.ok and outcome.detail.startswith("not an HTTP answer (BadStatusLine")


def test_a_refused_connection_fails() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound but not listening: a connection to it is refused
        port = bound.getsockname()[1]
        outcome = probe(http_check(f"http://127.0.0.1:{port}/"))
    assert (outcome.ok, outcome.detail) == (False, "connection refused")


@pytest.mark.parametrize(
    "criteria,code,expected",
    [("200", 200, True), ("200", 201, False), ("200-399", 399, True), ("200-399", 400, False),
     ("200,204,300-399", 204, True), ("200,204,300-399", 250, False), ("200, 500-504", 503, True)],
)
def test_codes_match(criteria: str, code: int, expected: bool) -> None:
    assert codes_match(criteria, code) is expected


def test_malformed_criteria_are_an_error() -> None:
    with pytest.raises(ValueError, match='"abc" is not a status code'):
        codes_match("200,abc", 200)


# Prometheus ---------------------------------------------------------------------------------------


def test_a_sample_that_compares_true_passes(prometheus: FakePrometheus) -> None:
    prometheus.set_value(1, __name__="up", job="x")
    outcome = probe(prometheus_check(prometheus.url))
    assert outcome.ok
    assert re.fullmatch(r'up\{job="x"\} = 1 \(> 0\) in \d+ ms', outcome.detail)


def test_the_query_is_sent_as_written(prometheus: FakePrometheus) -> None:
    query = 'sum(rate(http_requests_total{code=~"5..", path="/a b&c"}[1m])) / 2'
    probe(prometheus_check(prometheus.url, query))
    assert prometheus.queries == [query]


def test_a_sample_that_compares_false_fails_naming_it(prometheus: FakePrometheus) -> None:
    prometheus.set_value(0, __name__="up", job="x")
    assert probe(prometheus_check(prometheus.url)) == Outcome(
        False, pytest.approx(0, abs=1000), 'up{job="x"} = 0 (expected > 0)'
    )


def test_every_sample_must_compare_true(prometheus: FakePrometheus) -> None:
    prometheus.set_vector(({"__name__": "up", "job": "a"}, 1), ({"__name__": "up", "job": "b"}, 1))
    assert re.fullmatch(r"2 samples, all > 0 in \d+ ms", probe(prometheus_check(prometheus.url)).detail)
    prometheus.set_vector(
        ({"__name__": "up", "job": "a"}, 1), ({"__name__": "up", "job": "b"}, 0), ({"job": "c", "i": "1"}, 0)
    )
    outcome = probe(prometheus_check(prometheus.url))
    assert (outcome.ok, outcome.detail) == (False, 'up{job="b"} = 0 (expected > 0), and 1 more of 3 samples')


def test_a_scalar_is_compared(prometheus: FakePrometheus) -> None:
    prometheus.set_scalar(0.25)
    passing = probe(prometheus_check(prometheus.url, "0.25", "<", 0.5))
    assert re.fullmatch(r"scalar = 0.25 \(< 0.5\) in \d+ ms", passing.detail)
    assert probe(prometheus_check(prometheus.url, "0.25", ">=", 0.5)).detail == "scalar = 0.25 (expected >= 0.5)"


@pytest.mark.parametrize(
    "comparison,passing,failing",
    [(">", 2, 1), (">=", 1, 0.5), ("<", 0, 1), ("<=", 1, 1.5), ("==", 1, 2), ("!=", 2, 1)],
)
def test_each_comparison(prometheus: FakePrometheus, comparison: str, passing: float, failing: float) -> None:
    prometheus.set_value(passing, __name__="m")
    assert probe(prometheus_check(prometheus.url, "m", comparison, 1)).ok
    prometheus.set_value(failing, __name__="m")
    assert not probe(prometheus_check(prometheus.url, "m", comparison, 1)).ok


def test_nan_compares_false_except_for_not_equal(prometheus: FakePrometheus) -> None:
    prometheus.set_value(float("nan"), __name__="m")
    assert probe(prometheus_check(prometheus.url, "m", ">", 0)).detail == "m = NaN (expected > 0)"
    assert probe(prometheus_check(prometheus.url, "m", "!=", 0)).ok


def test_no_samples_fail(prometheus: FakePrometheus) -> None:
    prometheus.set_vector()
    assert probe(prometheus_check(prometheus.url)).detail == "query returned no samples"


def test_an_error_from_prometheus_fails_with_its_reason(prometheus: FakePrometheus) -> None:
    prometheus.set_error('1:4: parse error: unexpected "}"\nin label matching')
    outcome = probe(prometheus_check(prometheus.url))
    assert (outcome.ok, outcome.detail) == (
        False, 'Prometheus error (bad_data): 1:4: parse error: unexpected "}" in label matching'
    )


def test_an_answer_that_is_not_json_fails(prometheus: FakePrometheus) -> None:
    prometheus.set_raw(b"<html>Bad Gateway</html>", status=502, content_type="text/html")
    assert probe(prometheus_check(prometheus.url)).detail == "not a Prometheus answer (HTTP 502, not JSON)"


def test_a_range_vector_cannot_be_compared(prometheus: FakePrometheus) -> None:
    prometheus.set_matrix()
    assert probe(prometheus_check(prometheus.url)).detail == (
        "the query returned a matrix: only an instant vector or a scalar can be compared"
    )


def test_an_answer_larger_than_the_limit_fails(prometheus: FakePrometheus) -> None:
    prometheus.set_raw(b" " * (BODY_LIMIT + 10) + b"{}")
    assert probe(prometheus_check(prometheus.url)).detail == "the answer is larger than 1 MiB"


def test_a_server_behind_a_path_prefix_is_asked_there() -> None:
    with FakePrometheus(prefix="/prometheus") as fake:
        fake.set_value(1, __name__="up")
        assert probe(prometheus_check(fake.url + "/")).ok
        assert probe(prometheus_check(fake.url.removesuffix("/prometheus"))).detail == (
            "not a Prometheus answer (HTTP 404, not JSON)"
        )


def test_a_slow_prometheus_fails_when_timeout_seconds_have_passed(target: Target) -> None:
    target.delay = 5  # any server that does not answer in time
    outcome, elapsed = timed(prometheus_check(target.url, timeout=1))
    assert (outcome.ok, outcome.detail, 0.9 < elapsed < 1.5) == (False, "timed out after 1 s", True)


# Thresholds ---------------------------------------------------------------------------------------


def observe_all(thresholds: Thresholds, row: str) -> list[str]:
    """Feed a row of probes written as "+" (passed) and "-" (failed)."""
    return [thresholds.observe(mark == "+") for mark in row]


def test_chaos_mesh_defaults_fail_on_the_third_failure_in_a_row() -> None:
    thresholds = Thresholds.for_spec(http_check("http://x/"))
    assert (thresholds.failure_threshold, thresholds.success_threshold) == (3, 1)
    assert observe_all(thresholds, "--+--") == ["unknown"] * 2 + ["healthy"] * 3
    assert observe_all(thresholds, "-+") == ["failed", "healthy"]


def test_the_verdict_changes_only_when_a_threshold_is_crossed() -> None:
    thresholds = Thresholds(failure_threshold=2, success_threshold=2)
    assert observe_all(thresholds, "+-+") == ["unknown"] * 3
    assert observe_all(thresholds, "+") == ["healthy"]
    assert observe_all(thresholds, "-+-") == ["healthy"] * 3
    assert observe_all(thresholds, "-") == ["failed"]
    assert observe_all(thresholds, "+-+") == ["failed"] * 3
    assert observe_all(thresholds, "+") == ["healthy"]


def test_thresholds_come_from_the_spec() -> None:
    spec = STATUS_CHECK_SPEC.parse(
        {"type": "HTTP", "failureThreshold": 1, "successThreshold": 4,
         "http": {"url": "http://x/", "criteria": {"statusCode": "200"}}}, "spec"
    )
    thresholds = Thresholds.for_spec(spec)
    assert observe_all(thresholds, "+++-++++") == ["unknown"] * 3 + ["failed"] * 4 + ["healthy"]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_thresholds_below_one_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="failure_threshold must be a whole number of at least 1"):
        Thresholds(failure_threshold=bad)
