"""One probe of a status check, and Chaos Mesh's thresholds over a row of probes.

`probe(spec)` takes a canonical status-check spec (what `injector.manifests.STATUS_CHECK_SPEC.parse`
returns; defaults not given are Chaos Mesh's) and asks once:

- HTTP: the request as written (method, headers, body), redirects not followed, and the status code
  matched against `http.criteria.statusCode`. Only the status line and headers are waited for.
- Prometheus (a Chaosplane extension): an instant query to `{server}/api/v1/query`; every sample of
  the vector (or the scalar) must compare true to the threshold.

`timeoutSeconds` bounds the whole exchange (connect, send, answer, body), not each socket read, so a
server that trickles bytes cannot hold a probe longer. Network and server problems are failed
outcomes with their reason, never exceptions: a check that cannot reach its target has failed.

Pure: no Django, no models (experiments.checking records the outcomes). Proxies from the environment
are not used: a check probes the address it names.
"""
from __future__ import annotations

import base64
import http.client
import json
import operator
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from injector.manifests import HTTP_CHECK, STATUS_CHECK_SPEC, status_code_ranges

#: At most this much of an answer is read (a Prometheus answer larger than this fails the probe).
BODY_LIMIT = 1 << 20
#: A detail is one line of at most this many characters.
DETAIL_LIMIT = 300

UNKNOWN, HEALTHY, FAILED = "unknown", "healthy", "failed"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True)
class Outcome:
    """What one probe found: passed or not, how long it took, and why, in one line."""

    ok: bool
    latency_ms: float
    detail: str


class _Failed(Exception):
    """A probe that failed for a reason worth telling (its message is the outcome's detail)."""


def _default(name: str) -> Any:
    return STATUS_CHECK_SPEC.by_name[name].default


def codes_match(criteria: str, code: int) -> bool:
    """Whether `code` is one the criteria accepts ("200", "200-399", "200,204,300-399").
    Raises ValueError if the criteria is malformed (validated specs never are)."""
    return any(first <= code <= last for first, last in status_code_ranges(criteria))


def probe(spec: dict[str, Any]) -> Outcome:
    """One probe of the status check `spec` (a canonical StatusCheckSpec dict). Network and server
    problems are failed outcomes; only a spec that lacks its type's section raises (ValueError)."""
    check_type = spec.get("type", "HTTP")
    section = "prometheus" if check_type == "Prometheus" else "http"
    if not isinstance(spec.get(section), dict):
        raise ValueError(f"spec.{section} is required with type {check_type}")
    timeout = spec.get("timeoutSeconds", _default("timeoutSeconds"))
    started = time.monotonic()
    try:
        if check_type == "Prometheus":
            ok, detail = _probe_prometheus(spec["prometheus"], timeout)
        else:
            ok, detail = _probe_http(spec["http"], timeout)
    except _Failed as failure:
        ok, detail = False, str(failure)
    latency_ms = (time.monotonic() - started) * 1000
    return Outcome(ok, latency_ms, _one_line(f"{detail} in {latency_ms:.0f} ms" if ok else detail))


# HTTP -------------------------------------------------------------------------------------------------


def _probe_http(check: dict[str, Any], timeout: float) -> tuple[bool, str]:
    """(passed, why); probe() adds the latency to a pass."""
    headers = [(name, value) for name, values in check.get("headers", {}).items() for value in values]
    body = check["body"].encode() if "body" in check else None
    method = check.get("method", HTTP_CHECK.by_name["method"].default)
    status, _ = _exchange(method, check["url"], headers, body, timeout, read_limit=0)
    criteria = check["criteria"]["statusCode"]
    if codes_match(criteria, status):
        return True, f"HTTP {status}"
    return False, f"HTTP {status} (expected {criteria})"


def _exchange(
    method: str, url: str, headers: list[tuple[str, str]], body: bytes | None, timeout: float, read_limit: int
) -> tuple[int, bytes]:
    """Send one request and return the status and at most `read_limit` + 1 bytes of the body, all
    within `timeout` seconds; raises _Failed with the reason otherwise."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise _Failed(f"invalid URL {url}: {error}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise _Failed(f"invalid URL {url}: an http(s) URL with a host is needed")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    names = {name.lower() for name, _ in headers}
    if parts.username is not None and "authorization" not in names:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers = [*headers, ("Authorization", "Basic " + base64.b64encode(credentials).decode())]
    if (body is not None or method == "POST") and "content-length" not in names:
        headers = [*headers, ("Content-Length", str(len(body or b"")))]

    # The socket timeout bounds each wait; the watchdog bounds them all together, by shutting the
    # socket down at the deadline (which wakes a read that is blocked in another wait).
    cut = threading.Event()

    def cut_off() -> None:
        cut.set()
        sock = conn.sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: the exchange ended as the deadline came

    watchdog = threading.Timer(timeout, cut_off)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.putrequest(method, target, skip_host="host" in names, skip_accept_encoding="accept-encoding" in names)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read(read_limit + 1) if read_limit else b""
        if cut.is_set():  # the answer ended because the deadline cut it: what arrived is not all of it
            raise TimeoutError
        return response.status, data
    except (OSError, http.client.HTTPException, ValueError) as error:
        if cut.is_set() or isinstance(error, TimeoutError):
            raise _Failed(f"timed out after {timeout:g} s") from None
        raise _Failed(_network_reason(error, host)) from None
    finally:
        watchdog.cancel()
        conn.close()


def _network_reason(error: Exception, host: str) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.RemoteDisconnected):
        return "connection closed without a response"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {host}: {error.strerror}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, http.client.IncompleteRead):
        return "the answer was cut short"
    if isinstance(error, http.client.HTTPException):
        return f"not an HTTP answer ({type(error).__name__}: {error})"
    if isinstance(error, ValueError):
        return f"cannot send the request: {error}"
    return f"network error: {error.strerror or error}" if isinstance(error, OSError) else str(error)


# Prometheus -------------------------------------------------------------------------------------------


def _probe_prometheus(check: dict[str, Any], timeout: float) -> tuple[bool, str]:
    url = check["server"].rstrip("/") + "/api/v1/query?" + urlencode({"query": check["query"]})
    status, raw = _exchange("GET", url, [("Accept", "application/json")], None, timeout, read_limit=BODY_LIMIT)
    if len(raw) > BODY_LIMIT:
        raise _Failed(f"the answer is larger than {BODY_LIMIT // (1 << 20)} MiB")
    try:
        answer = json.loads(raw)
    except ValueError:
        raise _Failed(f"not a Prometheus answer (HTTP {status}, not JSON)") from None
    if not isinstance(answer, dict):
        raise _Failed(f"not a Prometheus answer (HTTP {status}, JSON but not an object)")
    if answer.get("status") == "error":
        raise _Failed(f"Prometheus error ({answer.get('errorType', 'unknown')}): {answer.get('error', '')}")
    if status != 200 or answer.get("status") != "success":
        raise _Failed(f"not a Prometheus answer (HTTP {status}, status {answer.get('status')!r})")
    samples = _samples(answer.get("data"))
    if not samples:
        raise _Failed("query returned no samples")
    compare, threshold, comparison = _COMPARE[check["comparison"]], check["threshold"], check["comparison"]
    failing = [(name, text) for name, text, value in samples if not compare(value, threshold)]
    if failing:
        name, text = failing[0]
        more = f", and {len(failing) - 1} more of {len(samples)} samples" if len(failing) > 1 else ""
        return False, f"{name} = {text} (expected {comparison} {threshold}){more}"
    if len(samples) == 1:
        name, text, _ = samples[0]
        return True, f"{name} = {text} ({comparison} {threshold})"
    return True, f"{len(samples)} samples, all {comparison} {threshold}"


def _samples(data: Any) -> list[tuple[str, str, float]]:
    """(series name, value as Prometheus wrote it, value) of an instant query's vector or scalar."""
    try:
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return [("scalar", str(result[1]), float(result[1]))]
        if kind != "vector":
            raise _Failed(f"the query returned a {kind}: only an instant vector or a scalar can be compared")
        return [(_series(item["metric"]), str(item["value"][1]), float(item["value"][1])) for item in result]
    except (KeyError, IndexError, TypeError, ValueError):
        raise _Failed("not a Prometheus answer (data.result is not an instant vector or a scalar)") from None


def _series(metric: dict[str, str]) -> str:
    """A series as Prometheus writes it: up{instance="a:9100", job="node"}."""
    labels = ", ".join(f"{key}={json.dumps(str(value), ensure_ascii=False)}"
                       for key, value in sorted(metric.items()) if key != "__name__")
    name = str(metric.get("__name__", ""))
    return f"{name}{{{labels}}}" if labels or not name else name


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= DETAIL_LIMIT else line[: DETAIL_LIMIT - 3] + "..."


# Thresholds -------------------------------------------------------------------------------------------


class Thresholds:
    """Chaos Mesh's verdict over a row of probes: `failure_threshold` failures in a row make the check
    "failed", `success_threshold` successes in a row make it "healthy"; before either it is "unknown".

    The verdict changes only when a threshold is crossed: a lone success after the check failed does
    not make it healthy again unless `success_threshold` is 1, and a failure below the failure
    threshold leaves a healthy check healthy. Chaos Mesh ends a check at its first "failed" (and a
    Synchronous one at its first "healthy"); callers that do so stop observing there.
    """

    def __init__(self, failure_threshold: int = _default("failureThreshold"),
                 success_threshold: int = _default("successThreshold")) -> None:
        for name, value in (("failure_threshold", failure_threshold), ("success_threshold", success_threshold)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        self.failure_threshold, self.success_threshold = failure_threshold, success_threshold
        self.failures = self.successes = 0  # the current run of each, in a row
        self.verdict = UNKNOWN

    @classmethod
    def for_spec(cls, spec: dict[str, Any]) -> Thresholds:
        """The thresholds of a canonical status-check spec (Chaos Mesh's defaults where not given)."""
        return cls(spec.get("failureThreshold", _default("failureThreshold")),
                   spec.get("successThreshold", _default("successThreshold")))

    def observe(self, ok: bool) -> str:
        """Count one probe's result and return the verdict after it: "unknown", "healthy" or "failed"."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.success_threshold:
                self.verdict = HEALTHY
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.failure_threshold:
                self.verdict = FAILED
        return self.verdict
