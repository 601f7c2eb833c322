"""HTTPChaos for real: an HTTP/1.1 server in namespace `a` (the target), clients in `b`, the proxy and its
REDIRECT rule in `a`. Each test measures the effect, recovers, and checks that no proxy process and no nat
rule of the fault is left (the lab fixture checks the rest)."""
from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from nodeagent.executors import http as httpchaos
from nodeagent.executors import inject, recover, validate
from nodeagent.executors.namespaces import run, run_in
from nodeagent.orders import FaultOrder, Refused, Target
from tests.nodeagent.netns import Lab, fault_id, needs_root

pytestmark = needs_root

PORT = 8080
JSON_BODY = b'{"a":1,"b":{"c":2}}'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Server:
    """A small HTTP/1.1 server answering from fixed bytes (no Date), so answers compare byte for byte.
    /json: a JSON body; /chunked: a chunked body; /raw: the exact request bytes it received; /upgrade: a 101
    and then an echo; anything else: what it understood of the request, as JSON. It records each
    connection's peer address."""

    def __init__(self, lab: Lab, ip: str, family: int = socket.AF_INET) -> None:
        self.lab, self.stop, self.peers = lab, threading.Event(), []
        self.listener = run_in(lab.path_a, lambda: socket.socket(family, socket.SOCK_STREAM))
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((ip, PORT))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for conn in self.conns:
            conn.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, peer = self.listener.accept()
            except OSError:
                continue
            self.peers.append(peer[0])
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, target, _ = lines[0].split(b" ")
                headers = [tuple(x.strip() for x in line.split(b":", 1)) for line in lines[1:]]
                low = {n.lower(): v for n, v in headers}
                if target == b"/upgrade":  # 101, then an echo of whatever comes
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
                    while buf or (buf := conn.recv(65536)):
                        conn.sendall(buf)
                        buf = b""
                    conn.shutdown(socket.SHUT_WR)
                    return
                if low.get(b"expect", b"").lower() == b"100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                raw, body = head + b"\r\n\r\n", b""
                if low.get(b"transfer-encoding", b"").lower() == b"chunked":
                    while True:
                        while b"\r\n" not in buf:
                            buf += conn.recv(65536)
                        line, _, buf = buf.partition(b"\r\n")
                        raw += line + b"\r\n"
                        size = int(line.split(b";")[0], 16)
                        if size == 0:
                            while b"\r\n\r\n" not in b"\r\n" + buf:
                                buf += conn.recv(65536)
                            trailers, _, buf = (b"\r\n" + buf).partition(b"\r\n\r\n")
                            raw += trailers[2:] + b"\r\n" if trailers[2:] else b"\r\n"
                            break
                        while len(buf) < size + 2:
                            buf += conn.recv(65536)
                        body += buf[:size]
                        raw += buf[:size + 2]
                        buf = buf[size + 2:]
                else:
                    length = int(low.get(b"content-length", b"0"))
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    body, buf = buf[:length], buf[length:]
                    raw += body
                conn.sendall(self._answer(method, target, headers, body, raw))
                if low.get(b"connection", b"").lower() == b"close":
                    conn.shutdown(socket.SHUT_WR)
                    return
        except OSError:
            return

    @staticmethod
    def _answer(method: bytes, target: bytes, headers: list, body: bytes, raw: bytes) -> bytes:
        path = target.split(b"?")[0]
        if path == b"/chunked":
            return (b"HTTP/1.1 200 OK\r\nServer: lab\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"6\r\nchunk \r\n4;ext=1\r\none \r\n3\r\ntwo\r\n0\r\nX-Trailer: t\r\n\r\n")
        if path == b"/json":
            payload, kind = JSON_BODY, b"application/json"
        elif path == b"/raw":
            payload, kind = raw, b"application/octet-stream"
        else:
            payload, kind = json.dumps({"method": method.decode(), "target": target.decode(),
                                        "headers": [[n.decode(), v.decode()] for n, v in headers],
                                        "body": body.decode()}).encode(), b"application/json"
        head = (b"HTTP/1.1 200 OK\r\nServer: lab\r\nContent-Type: " + kind + b"\r\nContent-Length: "
                + str(len(payload)).encode() + b"\r\n\r\n")
        return b"" if method == b"HEAD" else head + payload


@pytest.fixture
def server(lab: Lab) -> Iterator[Server]:
    s = Server(lab, lab.ip_a)
    yield s
    s.close()


def _order(lab: Lab, action: str, params: dict) -> FaultOrder:
    return FaultOrder(fault_id(), "HTTPChaos", action, {"port": PORT, **params}, Target(kind="netns", name=lab.a))


def _connect(lab: Lab, host: str | None = None) -> http.client.HTTPConnection:
    """A keep-alive client connection from namespace b (it never reconnects by itself, elsewhere)."""
    conn = http.client.HTTPConnection(host or lab.ip_a, PORT, timeout=5)
    run_in(lab.path_b, conn.connect)
    conn.auto_open = 0
    return conn


def _get(conn: http.client.HTTPConnection, path: str, method: str = "GET", body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, http.client.HTTPMessage, bytes, float]:
    start = time.monotonic()
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.headers, data, time.monotonic() - start


def _once(lab: Lab, path: str, **kw: object) -> tuple[int, http.client.HTTPMessage, bytes, float]:
    conn = _connect(lab)
    try:
        return _get(conn, path, **kw)  # type: ignore[arg-type]
    finally:
        conn.close()


def _raw(lab: Lab, data: bytes, host: str | None = None) -> bytes:
    """Sends `data` on one connection from b, half-closes, and reads until the server's side closes."""
    family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
    s = run_in(lab.path_b, lambda: socket.socket(family, socket.SOCK_STREAM))
    lab.sockets.append(s)
    s.settimeout(5)
    s.connect((host or lab.ip_a, PORT))
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # all sent: the half-close goes through too
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out


def _clean(lab: Lab, order: FaultOrder) -> None:
    """Nothing of the fault is left: no proxy process, no nat chain or jump, no child of ours."""
    short = validate.short_id(order.fault_id)
    assert httpchaos.proxies(short) == []
    assert order.fault_id not in httpchaos.running()
    assert [line for line in run_in(lab.path_a, httpchaos.nat_leftovers) if httpchaos.chain(short) in line] == []


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_abort_resets_matching_requests_only(lab: Lab, server: Server) -> None:
    assert _once(lab, "/api/x")[0] == 200
    order = _order(lab, "abort", {"target": "Request", "path": "/api/*", "method": "GET", "abort": True})
    print(inject(order))
    try:
        assert run_in(lab.path_a, httpchaos.nat_leftovers)  # the redirect is there
        with pytest.raises(ConnectionResetError):
            _once(lab, "/api/deep/path?q=1")
        status, _, body, _ = _once(lab, "/other")
        assert status == 200 and json.loads(body)["target"] == "/other"
        assert _once(lab, "/api/x", method="POST", body=b"{}")[0] == 200  # another method
        assert server.peers[-1] == lab.ip_a  # it went through the proxy, not straight to the server
    finally:
        recover(order)
    recover(order)  # idempotent
    assert _once(lab, "/api/x")[0] == 200
    assert server.peers[-1] == lab.ip_b  # direct again
    _clean(lab, order)
    order = _order(lab, "abort", {"target": "Response", "code": 200, "path": "/json", "abort": True})
    print(inject(order))
    try:
        with pytest.raises(ConnectionResetError):
            _once(lab, "/json")
        assert _once(lab, "/chunked")[2] == b"chunk one two"
    finally:
        recover(order)
    assert _once(lab, "/json")[2] == JSON_BODY
    _clean(lab, order)


def test_response_delay_500ms_within_20_percent(lab: Lab, server: Server) -> None:
    conn = _connect(lab)
    base = min(_get(conn, "/json")[3] for _ in range(3))
    conn.close()
    order = _order(lab, "delay", {"target": "Response", "path": "/json", "code": 200, "delay": "500ms"})
    print(inject(order))
    try:
        conn = _connect(lab)  # one keep-alive connection, several requests
        status, _, body, took = _get(conn, "/json")
        fast = _get(conn, "/other")[3]
        status2, _, body2, took2 = _get(conn, "/json")
        conn.close()
    finally:
        recover(order)
    print(f"baseline {base * 1e3:.1f} ms; delayed {took * 1e3:.0f} and {took2 * 1e3:.0f} ms; "
          f"not matching {fast * 1e3:.1f} ms")
    assert status == status2 == 200 and body == body2 == JSON_BODY
    # 500 ms within 20%: each at least 400 ms; load on the machine can only add, so the faster within 600 ms
    assert min(took, took2) - base >= 0.4 and min(took, took2) - base <= 0.6
    assert fast < 0.1
    assert _once(lab, "/json")[3] < 0.1
    _clean(lab, order)
    order = _order(lab, "delay", {"target": "Request", "method": "POST", "delay": "200ms"})
    print(inject(order))
    try:
        conn = _connect(lab)
        posted = _get(conn, "/echo", method="POST", body=b"x")
        got = _get(conn, "/echo")
        conn.close()
    finally:
        recover(order)
    print(f"request delay: POST {posted[3] * 1e3:.0f} ms, GET {got[3] * 1e3:.1f} ms")
    assert json.loads(posted[2])["body"] == "x" and 0.16 <= posted[3] - base <= 0.24 and got[3] < 0.1
    _clean(lab, order)


def test_response_replace_code_body_headers(lab: Lab, server: Server) -> None:
    order = _order(lab, "replace", {"target": "Response", "path": "/chunked", "replace": {
        "code": 503, "body": _b64(b"replaced!"), "headers": {"X-Chaos": "yes", "Server": "chaos"}}})
    print(inject(order))
    try:
        conn = _connect(lab)
        status, headers, body, _ = _get(conn, "/chunked")
        after = _get(conn, "/json")  # same connection: the framing after a changed body holds
        conn.close()
    finally:
        recover(order)
    assert (status, body) == (503, b"replaced!")
    assert headers.get_all("Server") == ["chaos"] and headers["X-Chaos"] == "yes"
    assert headers["Content-Length"] == "9" and "Transfer-Encoding" not in headers
    assert after[0] == 200 and after[2] == JSON_BODY and "X-Chaos" not in after[1]
    status, headers, body, _ = _once(lab, "/chunked")
    assert (status, body, headers["Server"]) == (200, b"chunk one two", "lab")
    _clean(lab, order)


def test_request_replace_path_method_queries_headers_body(lab: Lab, server: Server) -> None:
    order = _order(lab, "replace", {"target": "Request", "path": "/api/*", "method": "POST", "replace": {
        "path": "/echo/new", "method": "PUT", "queries": {"q": "new value"}, "headers": {"X-Req": "r"},
        "body": _b64(b"new body")}})
    print(inject(order))
    try:
        status, _, body, _ = _once(lab, "/api/old?q=old&keep=1&q=again", method="POST", body=b"old body",
                                   headers={"X-Req": "original"})
    finally:
        recover(order)
    seen = json.loads(body)
    assert status == 200
    assert seen["method"] == "PUT" and seen["target"] == "/echo/new?q=new+value&keep=1"
    assert seen["body"] == "new body"
    assert [v for n, v in seen["headers"] if n == "X-Req"] == ["r"]
    assert [v for n, v in seen["headers"] if n == "Content-Length"] == ["8"]
    _clean(lab, order)


def test_patch_request_json_queries_headers_with_chunked_body_and_expect(lab: Lab, server: Server) -> None:
    order = _order(lab, "patch", {"target": "Request", "path": "/echo", "patch": {
        "body": {"type": "JSON", "value": '{"b":{"c":null,"d":3}}'}, "queries": [["added", "a b"]],
        "headers": [["X-Added", "1"], ["X-Added", "2"]]}})
    print(inject(order))
    try:
        s = lab.sock(lab.path_b, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((lab.ip_a, PORT))
        s.sendall(b"POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n"
                  b"Connection: close\r\n\r\n")
        assert s.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"  # from the proxy, which needs the body first
        s.sendall(b"7\r\n" + JSON_BODY[:7] + b"\r\n" + f"{len(JSON_BODY) - 7:x}".encode() + b"\r\n"
                  + JSON_BODY[7:] + b"\r\n0\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        s.close()
    finally:
        recover(order)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    seen = json.loads(body)
    assert json.loads(seen["body"]) == {"a": 1, "b": {"d": 3}}
    assert seen["target"] == "/echo?x=1&added=a+b"
    names = [n.lower() for n, _ in seen["headers"]]
    assert [v for n, v in seen["headers"] if n == "X-Added"] == ["1", "2"]
    assert "transfer-encoding" not in names and "expect" not in names
    assert [v for n, v in seen["headers"] if n == "Content-Length"] == [str(len(seen["body"]))]
    _clean(lab, order)


def test_patch_response_json_and_header(lab: Lab, server: Server) -> None:
    order = _order(lab, "patch", {"target": "Response", "response_headers": {"Content-Type": "application/json"},
                                  "patch": {"body": {"type": "JSON", "value": '{"b":{"c":null,"d":[3]},"e":"é"}'},
                                            "headers": [["X-Patched", "yes"]]}})
    print(inject(order))
    try:
        status, headers, body, _ = _once(lab, "/json")
        plain = _once(lab, "/chunked")  # text/plain: not selected
    finally:
        recover(order)
    assert status == 200 and json.loads(body) == {"a": 1, "b": {"d": [3]}, "e": "é"}
    assert headers["X-Patched"] == "yes" and headers["Content-Length"] == str(len(body))
    assert plain[2] == b"chunk one two" and "X-Patched" not in plain[1]
    _clean(lab, order)


PIPELINED = (b"GET /raw HTTP/1.1\r\nHost: a\r\nX-Odd:   spaced   \r\nx-lower: v\r\n\r\n"
             b"POST /raw?x=%20 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5;e=1\r\nhello\r\n0\r\nTrail: t\r\n\r\n"
             b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n"
             b"HEAD /json HTTP/1.1\r\nHost: a\r\n\r\n"
             b"PUT /raw HTTP/1.0\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")


def test_non_matching_traffic_passes_byte_for_byte(lab: Lab, server: Server) -> None:
    direct = _raw(lab, PIPELINED)
    assert direct.count(b"HTTP/1.1 200 OK") == 4 and server.peers[-1] == lab.ip_b
    faults = [_order(lab, "replace", {"target": "Request", "path": "/api/*", "replace": {"body": _b64(b"x")}}),
              _order(lab, "patch", {"target": "Response", "code": 500, "patch": {"headers": [["X", "y"]]}})]
    for order in faults:
        print(inject(order))
        try:
            proxied = _raw(lab, PIPELINED)
            assert server.peers[-1] == lab.ip_a  # through the proxy
        finally:
            recover(order)
        assert proxied == direct
        _clean(lab, order)


def test_upgrade_is_relayed_raw_after_the_101(lab: Lab, server: Server) -> None:
    order = _order(lab, "replace", {"target": "Response", "replace": {"body": _b64(b"replaced")}})
    print(inject(order))
    try:
        upgraded = _raw(lab, b"GET /upgrade HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
        assert upgraded.endswith(b"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")  # not replaced
        assert upgraded.startswith(b"HTTP/1.1 101 ")
        assert _once(lab, "/json")[2] == b"replaced"  # the rule is on
    finally:
        recover(order)
    _clean(lab, order)


def test_other_protocols_on_the_port_are_relayed_raw(lab: Lab) -> None:
    def greet_and_echo(conn: socket.socket) -> None:  # a server that speaks first, then echoes
        conn.sendall(b"+HELLO\r\n")
        while data := conn.recv(65536):
            conn.sendall(data)
        conn.close()

    lab.tcp_server(lab.path_a, lab.ip_a, PORT, greet_and_echo)
    order = _order(lab, "abort", {"target": "Request", "abort": True})
    print(inject(order))
    try:
        s = lab.sock(lab.path_b, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect((lab.ip_a, PORT))
        assert s.recv(64) == b"+HELLO\r\n"  # passed on at once, not held waiting for an HTTP head
        s.sendall(b"\x16\x03\x01binary\r\n\r\n")  # not HTTP: not aborted, relayed
        assert s.recv(64) == b"\x16\x03\x01binary\r\n\r\n"
        s.close()
    finally:
        recover(order)
    _clean(lab, order)


def test_concurrent_keep_alive_clients_get_their_own_answers(lab: Lab, server: Server) -> None:
    order = _order(lab, "patch", {"target": "Response", "path": "/json", "patch": {"headers": [["X-P", "1"]]}})
    print(inject(order))
    errors: list[str] = []

    def client(n: int) -> None:
        try:
            conn = _connect(lab)
            for i in range(20):
                path = "/json" if i % 2 else f"/echo/{n}/{i}"
                status, headers, body, _ = _get(conn, path)
                if path == "/json":
                    assert (status, body, headers["X-P"]) == (200, JSON_BODY, "1")
                else:
                    assert json.loads(body)["target"] == path and "X-P" not in headers
            conn.close()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(f"client {n}: {error!r}")

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        recover(order)
    assert errors == []
    _clean(lab, order)


def test_ipv6_is_intercepted_too(lab: Lab) -> None:
    ip_a, ip_b = f"fd00:250:{lab.n:x}::1", f"fd00:250:{lab.n:x}::2"
    run(["ip", "-n", lab.a, "addr", "add", f"{ip_a}/64", "dev", "veth0", "nodad"])
    run(["ip", "-n", lab.b, "addr", "add", f"{ip_b}/64", "dev", "veth1", "nodad"])
    s = Server(lab, ip_a, socket.AF_INET6)
    order = _order(lab, "replace", {"target": "Response", "path": "/json", "replace": {"body": _b64(b"six")}})
    try:
        print(inject(order))
        try:
            answer = _raw(lab, b"GET /json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", host=ip_a)
        finally:
            recover(order)
        assert answer.endswith(b"\r\n\r\nsix") and b"Content-Length: 3\r\n" in answer
        assert s.peers[-1] == ip_a
        assert _raw(lab, b"GET /json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", host=ip_a).endswith(JSON_BODY)
    finally:
        s.close()
    _clean(lab, order)


def test_agent_killed_mid_fault_is_recovered_by_a_fresh_process(lab: Lab, server: Server) -> None:
    order = _order(lab, "abort", {"target": "Request", "abort": True})
    code = ("import sys, time\nfrom nodeagent.executors import inject\nfrom nodeagent.orders import FaultOrder\n"
            "print(inject(FaultOrder.from_json(sys.argv[1])), flush=True)\ntime.sleep(60)\n")
    agent = subprocess.Popen([sys.executable, "-c", code, order.to_json()], cwd=ROOT, stdout=subprocess.PIPE,
                             start_new_session=True)
    try:
        assert agent.stdout is not None
        print(agent.stdout.readline().decode().strip())
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(5)
        short = validate.short_id(order.fault_id)
        assert httpchaos.proxies(short)  # the fault outlives the agent
        with pytest.raises(ConnectionResetError):
            _once(lab, "/x")
    finally:
        recover(FaultOrder.from_json(order.to_json()))  # what a restarted agent has: the journaled order
    assert _once(lab, "/x")[0] == 200
    _clean(lab, order)


def test_refused_values_leave_nothing(lab: Lab) -> None:
    bad = [
        ("abort", {"target": "Request", "abort": True, "request_headers": {"X": "a\r\nInjected: 1"}}, "CR or LF"),
        ("abort", {"target": "Request", "abort": True, "request_headers": {"Bad Name": "a"}}, "header name"),
        ("abort", {"target": "Request", "abort": True, "code": 200}, "target Response"),
        ("replace", {"target": "Request", "replace": {"code": 500}}, "target Response"),
        ("replace", {"target": "Response", "replace": {"path": "/x"}}, "target Request"),
        ("replace", {"target": "Response", "replace": {"code": 101}}, "replace.code"),
        ("replace", {"target": "Response", "replace": {"body": "not base64!"}}, "base64"),
        ("replace", {"target": "Request", "replace": {"path": "/a?b"}}, "replace.path"),
        ("patch", {"target": "Request", "patch": {"body": {"type": "JSON", "value": "{"}}}, "not JSON"),
        ("patch", {"target": "Request", "patch": {"body": {"type": "XML", "value": "{}"}}}, "type"),
        ("abort", {"target": "Request", "abort": False}, "at least one"),
        ("delay", {"target": "Request", "abort": True}, "no delay"),
        ("abort", {"target": "Request", "abort": True, "path": "no-slash"}, "path"),
        ("abort", {"target": "Request", "abort": True, "port": 0}, "port"),
        ("abort", {"target": "Both", "abort": True}, "target"),
        ("abort", {"target": "Request", "abort": True, "action": "abort"}, "unknown field"),
        ("delay", {"target": "Request", "delay": "forever"}, "duration"),
    ]
    for action, params, reason in bad:
        order = _order(lab, action, params)
        with pytest.raises(Refused, match=reason):
            inject(order)
        _clean(lab, order)
    with pytest.raises(Refused, match="does not exist"):
        inject(FaultOrder(fault_id(), "HTTPChaos", "abort", {"target": "Request", "port": PORT, "abort": True},
                          Target(kind="netns", name="no-such-ns")))


def test_a_proxy_that_cannot_start_is_refused_with_its_reason(lab: Lab, tmp_path, monkeypatch) -> None:
    broken = tmp_path / "proxy.py"
    broken.write_text("import sys\nsys.exit('cannot listen: no luck')\n")
    monkeypatch.setattr(httpchaos, "PROXY", str(broken))
    order = _order(lab, "abort", {"target": "Request", "abort": True})
    with pytest.raises(Refused, match="did not start .*no luck"):
        inject(order)
    _clean(lab, order)


def test_a_second_fault_on_the_same_port_is_refused(lab: Lab) -> None:
    first = _order(lab, "delay", {"target": "Request", "delay": "10ms"})
    inject(first)
    try:
        second = _order(lab, "abort", {"target": "Request", "abort": True})
        with pytest.raises(Refused, match="already holds port 8080"):
            inject(second)
        _clean(lab, second)
        elsewhere = _order(lab, "abort", {"target": "Request", "abort": True, "port": PORT + 1})
        print(inject(elsewhere))
        recover(elsewhere)
        _clean(lab, elsewhere)
        assert len(run_in(lab.path_a, httpchaos.nat_leftovers)) == 6  # the first one's: chain, jump, rule; v4 and v6
    finally:
        recover(first)
    _clean(lab, first)


def test_recover_of_never_injected_and_of_vanished_namespace(lab: Lab) -> None:
    order = _order(lab, "abort", {"target": "Request", "abort": True})
    recover(order)
    recover(FaultOrder(fault_id(), "HTTPChaos", "abort", {}, Target(kind="netns", name="no-such-ns")))
    _clean(lab, order)


def test_capability() -> None:
    name, ok, detail = httpchaos.capability()
    print(name, ok, detail)
    assert name == "http-proxy" and ok and "REDIRECT" in detail
