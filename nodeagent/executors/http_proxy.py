"""The HTTPChaos proxy: a transparent HTTP/1.1 proxy, one process per fault, that the agent starts inside
the target's network namespace (nodeagent.executors.http). iptables REDIRECTs the TCP connections that
arrive for the target's port to it; it finds where each was going (SO_ORIGINAL_DST), connects there
itself (a locally made connection, which the PREROUTING rule does not see, so it never loops), and
relays, applying the fault's one rule the way Chaos Mesh's tproxy does:

- a request (target Request) or a response (target Response) that matches the port, path glob, method,
  status code and headers is aborted (the client's connection is reset), delayed, has parts replaced
  (path, method, code, body, queries, headers) and/or patched (JSON merge patch of the body, queries and
  headers appended);
- everything else passes byte for byte: keep-alive, pipelining, chunked bodies, 1xx answers, upgrades
  and anything that is not HTTP/1.x (relayed raw). A changed body gets a Content-Length of its own.

Standalone on purpose: the standard library only, nothing of the agent, run as `python -I`. It reads its
rule as JSON on stdin, prints "READY <IPv4 port> <IPv6 port or 0>" once listening, and serves until killed.
A connection through it ends when either side closes it, or after IDLE seconds (plus the fault's delay)
without a byte either way; at most MAX_CONNECTIONS are served at once.
"""
from __future__ import annotations

import base64
import json
import os
import queue
import re
import selectors
import socket
import struct
import sys
import threading
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST is the same number at SOL_IPV6
MAX_HEAD = 64 * 1024
MAX_LINE = 8 * 1024
MAX_BUFFERED = 16 * 2**20  # a body larger than this is passed on unchanged rather than patched
CHUNK = 65536
IDLE = 600.0  # a connection with no byte either way for this long (plus the fault's delay) is closed
MAX_CONNECTIONS = 4096  # beyond this many at once, new connections are reset
CONNECT_TIMEOUT = 10.0
CRLF = b"\r\n"
MISSING = object()

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb"+) ([\x21-\x7e\x80-\xff]+) (HTTP/1\.[01])")
_METHOD_PREFIX = re.compile(_TOKEN + rb"{0,32}")
_STATUS_LINE = re.compile(rb"(HTTP/1\.[01]) ([1-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?")
_FIELD = re.compile(rb"(" + _TOKEN + rb"+):[ \t]*(.*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,15})[ \t]*(?:;.*)?\r\n")


class NotHttp(Exception):
    """The bytes are not an HTTP/1.x message we can frame: the rest of that direction is relayed raw."""


class Closed(Exception):
    """The peer closed in the middle of a message."""


class Reader:
    """Buffered reads from a socket; whatever is read stays byte-exact for passing on."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def fill(self) -> bool:
        data = self.sock.recv(CHUNK)
        if not data:
            return False
        self.buf += data
        return True

    def head(self, plausible: Any) -> bytes | None:
        """A message head up to its blank line; None at EOF before its first byte. `plausible(buf)`
        says early whether the bytes can still become one, so another protocol is not held up."""
        searched = 0
        while True:
            end = self.buf.find(b"\r\n\r\n", max(0, searched - 3))
            if end >= 0:
                out = bytes(self.buf[:end + 4])
                del self.buf[:end + 4]
                return out
            if self.buf and not plausible(self.buf):
                raise NotHttp("not an HTTP/1.x head")
            if len(self.buf) > MAX_HEAD:
                raise NotHttp("head too long")
            searched = len(self.buf)
            if not self.fill():
                if not self.buf:
                    return None
                raise NotHttp("closed in a head")

    def line(self) -> bytes:
        searched = 0
        while True:
            end = self.buf.find(CRLF, max(0, searched - 1))
            if end >= 0:
                out = bytes(self.buf[:end + 2])
                del self.buf[:end + 2]
                return out
            if len(self.buf) > MAX_LINE:
                raise NotHttp("line too long")
            searched = len(self.buf)
            if not self.fill():
                raise Closed("closed in a line")

    def some(self, limit: int) -> bytes:
        """Up to `limit` bytes; b"" at EOF."""
        if not self.buf and not self.fill():
            return b""
        out = bytes(self.buf[:limit])
        del self.buf[:limit]
        return out

    def exact(self, count: int) -> bytes:
        while len(self.buf) < count:
            if not self.fill():
                raise Closed("closed in a body")
        out = bytes(self.buf[:count])
        del self.buf[:count]
        return out


def _plausible_request(buf: bytearray) -> bool:
    first, crlf, _ = bytes(buf[:MAX_LINE]).partition(CRLF)
    if crlf:
        return _REQUEST_LINE.fullmatch(first) is not None
    method, space, _ = first.partition(b" ")
    return _METHOD_PREFIX.fullmatch(method) is not None and (bool(method) or not space)


def _plausible_response(buf: bytearray) -> bool:
    start = bytes(buf[:7])
    if start != b"HTTP/1."[:len(start)]:
        return False
    first, crlf, _ = bytes(buf[:MAX_LINE]).partition(CRLF)
    return not crlf or _STATUS_LINE.fullmatch(first) is not None


class Message:
    """A parsed head: the start line's three parts and the header fields in the order received."""

    def __init__(self, raw: bytes, first: list[bytes], fields: list[tuple[bytes, bytes]]) -> None:
        self.raw, self.first, self.fields = raw, first, fields

    @classmethod
    def parse(cls, raw: bytes, request: bool) -> Message:
        lines = raw[:-4].split(CRLF)
        match = (_REQUEST_LINE if request else _STATUS_LINE).fullmatch(lines[0])
        if match is None:
            raise NotHttp("bad start line")
        fields: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t") and fields:  # obsolete line folding
                name, value = fields[-1]
                fields[-1] = (name, value + b" " + line.strip(b" \t"))
                continue
            field = _FIELD.fullmatch(line)
            if field is None or b"\r" in line or b"\n" in line or b"\0" in line:
                raise NotHttp("bad header field")
            fields.append((field.group(1), field.group(2)))
        return cls(raw, [match.group(1), match.group(2), match.group(3) or b""], fields)

    def values(self, name: bytes) -> list[bytes]:
        name = name.lower()
        return [v for n, v in self.fields if n.lower() == name]

    def remove(self, name: bytes) -> None:
        name = name.lower()
        self.fields = [(n, v) for n, v in self.fields if n.lower() != name]

    def tokens(self, name: bytes) -> list[bytes]:
        return [t.strip().lower() for v in self.values(name) for t in v.split(b",") if t.strip()]

    def build(self) -> bytes:
        return b" ".join(self.first) + CRLF + b"".join(n + b": " + v + CRLF for n, v in self.fields) + CRLF

    def copy(self) -> Message:
        return Message(self.raw, list(self.first), list(self.fields))


def _length(msg: Message) -> int | None:
    values = {v.strip() for value in msg.values(b"content-length") for v in value.split(b",")}
    if not values:
        return None
    if len(values) != 1 or not next(iter(values)).isdigit() or len(next(iter(values))) > 18:
        raise NotHttp("bad Content-Length")
    return int(next(iter(values)))


def request_framing(msg: Message) -> tuple[str, int]:
    """("chunked" | "length" | "none", length) of a request body (RFC 9112 section 6.3)."""
    if msg.values(b"transfer-encoding"):
        if msg.tokens(b"transfer-encoding")[-1:] != [b"chunked"]:
            raise NotHttp("a request Transfer-Encoding that does not end in chunked")
        return "chunked", 0
    length = _length(msg)
    return ("length", length) if length else ("none", 0)


def response_framing(msg: Message, method: bytes | None) -> tuple[str, int]:
    code = int(msg.first[1])
    if method == b"HEAD" or code < 200 or code in (204, 304) or (method == b"CONNECT" and code < 300):
        return "none", 0
    if msg.values(b"transfer-encoding"):
        return ("chunked", 0) if msg.tokens(b"transfer-encoding")[-1:] == [b"chunked"] else ("close", 0)
    length = _length(msg)
    if length is None:
        return "close", 0
    return ("length", length) if length else ("none", 0)


def _chunk_size(line: bytes) -> int:
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise NotHttp("bad chunk size line")
    return int(match.group(1), 16)


def relay(reader: Reader, out: socket.socket | None, kind: str, length: int) -> None:
    """Passes one body on exactly as framed (out None: reads and drops it)."""
    send = out.sendall if out is not None else (lambda data: None)
    if kind == "length":
        while length:
            data = reader.some(min(length, CHUNK))
            if not data:
                raise Closed("closed in a body")
            send(data)
            length -= len(data)
    elif kind == "chunked":
        while True:
            line = reader.line()
            size = _chunk_size(line)
            send(line)
            if size == 0:
                while True:  # trailer fields, then the blank line
                    trailer = reader.line()
                    send(trailer)
                    if trailer == CRLF:
                        return
            relay(reader, out, "length", size + 2)
    elif kind == "close":
        while data := reader.some(CHUNK):
            send(data)


def read_body(reader: Reader, kind: str, length: int) -> tuple[bytes, bytes, bool]:
    """(decoded body, raw bytes as framed, complete); incomplete when it grew past MAX_BUFFERED, in which
    case the rest is still to be relayed (chunked bodies stop at a chunk boundary)."""
    if kind == "none":
        return b"", b"", True
    if kind == "length":
        data = reader.exact(length)
        return data, data, True
    decoded, raw = bytearray(), bytearray()
    if kind == "chunked":
        while True:
            line = reader.line()
            size = _chunk_size(line)
            raw += line
            if size == 0:
                while True:
                    trailer = reader.line()
                    raw += trailer
                    if trailer == CRLF:
                        return bytes(decoded), bytes(raw), True
            data = reader.exact(size + 2)
            if data[-2:] != CRLF:
                raise NotHttp("chunk without its CRLF")
            raw += data
            decoded += data[:-2]
            if len(decoded) > MAX_BUFFERED:
                return bytes(decoded), bytes(raw), False
    while data := reader.some(CHUNK):  # until close
        decoded += data
        if len(decoded) > MAX_BUFFERED:
            return bytes(decoded), bytes(decoded), False
    return bytes(decoded), bytes(decoded), True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _glob(pattern: str) -> re.Pattern[str]:
    """Chaos Mesh's wildmatch: * is any run of characters (slashes too), ? exactly one."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def split_target(target: bytes) -> tuple[bytes, bytes, bytes | None]:
    """(scheme://authority or b"", path, query or None) of a request target."""
    prefix = b""
    if b"://" in target and not target.startswith(b"/"):
        scheme, _, rest = target.partition(b"://")
        slash = min([i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0], default=len(rest))
        prefix, target = scheme + b"://" + rest[:slash], rest[slash:]
        if not target.startswith(b"/"):
            target = b"/" + target
    target = target.partition(b"#")[0]
    path, mark, query = target.partition(b"?")
    return prefix, path, query if mark else None


def join_target(prefix: bytes, path: bytes, query: bytes | None) -> bytes:
    return prefix + path + (b"?" + query if query is not None else b"")


def _utf8(text: Any) -> str:
    """Text as the latin-1 characters of its UTF-8 bytes, so urlencode(encoding="latin-1") sends UTF-8."""
    return str(text).encode("utf-8").decode("latin-1")


def _pairs(items: Any) -> list[tuple[bytes, bytes]]:
    return [(str(n).encode("latin-1"), str(v).encode("latin-1")) for n, v in items or []]


class Rule:
    """The fault's rule, as the agent validated it (nodeagent.executors.http.rule)."""

    def __init__(self, c: dict[str, Any]) -> None:
        self.target: str = c["target"]
        self.port: int = int(c["port"])
        self.path = _glob(c["path"]) if c.get("path") is not None else None
        self.method = c["method"].encode() if c.get("method") else None
        self.code = int(c["code"]) if c.get("code") is not None else None
        self.request_headers = _pairs(c.get("request_headers"))
        self.response_headers = _pairs(c.get("response_headers"))
        self.abort = bool(c.get("abort"))
        self.delay = float(c.get("delay") or 0.0)
        rep = c.get("replace") or {}
        self.r_path = rep["path"].encode() if rep.get("path") else None
        self.r_method = rep["method"].encode() if rep.get("method") else None
        self.r_code = int(rep["code"]) if rep.get("code") is not None else None
        self.r_body = base64.b64decode(rep["body"]) if rep.get("body") is not None else None
        self.r_queries = [(_utf8(n), _utf8(v)) for n, v in rep.get("queries") or []]
        self.r_headers = _pairs(rep.get("headers"))
        pat = c.get("patch") or {}
        self.p_body = json.loads(pat["body"]) if pat.get("body") is not None else MISSING
        self.p_queries = urlencode([(str(n), str(v)) for n, v in pat.get("queries") or []]).encode()
        self.p_headers = _pairs(pat.get("headers"))
        self.edits_body = self.r_body is not None or self.p_body is not MISSING

    @staticmethod
    def _has(msg: Message, wanted: list[tuple[bytes, bytes]]) -> bool:
        return all(value in msg.values(name) for name, value in wanted)

    def matches_request(self, req: Message) -> bool:
        path = split_target(req.first[1])[1] if req.first[0] != b"CONNECT" else b""
        return ((self.path is None or self.path.fullmatch(path.decode("latin-1")) is not None)
                and (self.method is None or req.first[0] == self.method)
                and self._has(req, self.request_headers))

    def matches_response(self, req: Message | None, resp: Message) -> bool:
        return (req is not None and self.matches_request(req)
                and (self.code is None or int(resp.first[1]) == self.code)
                and self._has(resp, self.response_headers))

    def _headers(self, msg: Message) -> None:
        for name, value in self.r_headers:
            msg.remove(name)
            msg.fields.append((name, value))
        msg.fields += self.p_headers

    def edit_request(self, req: Message) -> Message:
        out = req.copy()
        prefix, path, query = split_target(out.first[1])
        if self.r_path is not None:
            path = self.r_path
        if self.r_queries:
            # latin-1 both ways: the untouched parameters keep their exact bytes
            pairs = parse_qsl((query or b"").decode("latin-1"), keep_blank_values=True, encoding="latin-1")
            given = dict(self.r_queries)
            kept: list[tuple[str, str]] = []
            done: set[str] = set()
            for name, value in pairs:
                if name not in given:
                    kept.append((name, value))
                elif name not in done:  # the first occurrence takes the new value, the others go
                    kept.append((name, given[name]))
                    done.add(name)
            kept += [(n, v) for n, v in given.items() if n not in done]
            query = urlencode(kept, encoding="latin-1").encode("latin-1")
        if self.p_queries:
            query = query + b"&" + self.p_queries if query else self.p_queries
        out.first[1] = join_target(prefix, path, query)
        if self.r_method is not None:
            out.first[0] = self.r_method
        self._headers(out)
        return out

    def edit_response(self, resp: Message) -> Message:
        out = resp.copy()
        if self.r_code is not None:
            out.first[1] = str(self.r_code).encode()
            try:
                out.first[2] = HTTPStatus(self.r_code).phrase.encode()
            except ValueError:
                out.first[2] = b"Status"
        self._headers(out)
        return out

    def body(self, original: bytes) -> bytes | None:
        """The new body, or None to keep the original (a patch of a body that is not JSON is not applied)."""
        body = self.r_body if self.r_body is not None else original
        if self.p_body is not MISSING:
            try:
                merged = merge_patch(json.loads(body), self.p_body)
            except (ValueError, UnicodeDecodeError):
                return self.r_body
            return json.dumps(merged, separators=(",", ":"), ensure_ascii=False).encode()
        return body


def _set_length(msg: Message, length: int) -> None:
    msg.remove(b"content-length")
    msg.remove(b"transfer-encoding")
    msg.fields.append((b"Content-Length", str(length).encode()))


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


class Pending:
    """A request sent upstream whose response is still to come; `tunnel` is decided by that response."""

    def __init__(self, msg: Message | None, raw: bool = False) -> None:
        self.msg, self.raw = msg, raw
        self.method = msg.first[0] if msg is not None else None
        self.wants_tunnel = msg is not None and (self.method == b"CONNECT" or bool(msg.values(b"upgrade")))
        self.decided = threading.Event()
        self.tunnel = False


class Connection:
    """One client connection and its upstream: requests are read and passed on in this thread, responses
    in a second one; `pending` tells the second what each response answers."""

    def __init__(self, rule: Rule, client: socket.socket, upstream: socket.socket) -> None:
        self.rule, self.client, self.upstream = rule, client, upstream
        self.cr, self.ur = Reader(client), Reader(upstream)
        self.pending: queue.Queue[Pending] = queue.Queue()
        self.outstanding = 0
        self.idle = threading.Condition()
        self.aborted = False
        self.answers = threading.Thread(target=self._guard, args=(self.responses,), daemon=True)

    def run(self) -> None:
        self.answers.start()
        self._guard(self.requests)
        self.answers.join()
        self.client.close()
        self.upstream.close()

    def _guard(self, work: Any) -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 - a broken connection ends both directions, never the proxy
            _shutdown(self.upstream, socket.SHUT_RDWR)
            if not self.aborted:
                _shutdown(self.client, socket.SHUT_RDWR)

    def reset(self) -> None:
        """Chaos Mesh's abort: the client's connection is reset (RST), the upstream one closed."""
        self.aborted = True
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        _shutdown(self.client, socket.SHUT_RD)  # wakes the other thread's read; sends nothing
        _shutdown(self.upstream, socket.SHUT_RDWR)
        self.client.close()  # with linger 0: an RST, once no other thread is inside a call on it

    def _send(self, pending: Pending, data: bytes) -> None:
        with self.idle:
            self.outstanding += 1
        self.pending.put(pending)
        self.upstream.sendall(data)

    def requests(self) -> None:
        while True:
            raw = None
            try:
                raw = self.cr.head(_plausible_request)
                msg = Message.parse(raw, request=True) if raw is not None else None
                kind, length = request_framing(msg) if msg is not None else ("none", 0)
            except NotHttp:
                if raw is not None:
                    self.cr.buf[:0] = raw
                self.pending.put(Pending(None, raw=True))
                return self._raw(self.cr, self.upstream)
            if msg is None:  # the client closed between requests
                return _shutdown(self.upstream, socket.SHUT_WR)
            rule = self.rule
            matched = rule.target == "Request" and rule.matches_request(msg)
            if matched and rule.abort:
                return self.reset()
            if matched and rule.delay:
                time.sleep(rule.delay)
            if not matched:
                pending = Pending(msg)
                self._send(pending, raw)
                relay(self.cr, self.upstream, kind, length)
            else:
                pending = self._edited_request(msg, kind, length)
            if pending.wants_tunnel:
                while not pending.decided.wait(0.5):
                    if not self.answers.is_alive():
                        return None
                if pending.tunnel:
                    return self._raw(self.cr, self.upstream)

    def _continue(self, msg: Message, kind: str) -> None:
        """A client that sent `Expect: 100-continue` waits for a 100 before its body; when the body is
        wanted here before the head goes upstream, the 100 comes from here (once earlier answers are out)."""
        if kind == "none" or b"100-continue" not in msg.tokens(b"expect"):
            return
        msg.remove(b"expect")
        with self.idle:
            self.idle.wait_for(lambda: self.outstanding == 0, timeout=IDLE + self.rule.delay)
            self.client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _edited_request(self, msg: Message, kind: str, length: int) -> Pending:
        rule = self.rule
        edited = rule.edit_request(msg)
        if not rule.edits_body or (kind == "length" and length > MAX_BUFFERED and rule.r_body is None):
            pending = Pending(edited)
            self._send(pending, edited.build())
            relay(self.cr, self.upstream, kind, length)
            return pending
        self._continue(edited, kind)
        if rule.r_body is not None and rule.p_body is MISSING:
            relay(self.cr, None, kind, length)  # the original body is not needed
            decoded, raw, complete = b"", b"", True
        else:
            decoded, raw, complete = read_body(self.cr, kind, length)
        body = rule.body(decoded) if complete else None
        if body is None:  # unchanged: the original framing and bytes
            pending = Pending(edited)
            self._send(pending, edited.build() + raw)
            if not complete:
                relay(self.cr, self.upstream, kind, 0)
            return pending
        _set_length(edited, len(body))
        pending = Pending(edited)
        self._send(pending, edited.build() + body)
        return pending

    def responses(self) -> None:
        while True:
            if not self.ur.buf and not self.ur.fill():
                return self._upstream_closed()
            try:
                pending = self.pending.get_nowait()  # put before its request was sent upstream
            except queue.Empty:
                pending = Pending(None)  # something the server sent unasked
            if pending.raw:
                return self._raw(self.ur, self.client)
            if not self._response(pending):
                return

    def _answered(self, pending: Pending, tunnel: bool = False) -> None:
        pending.tunnel = tunnel
        pending.decided.set()
        if pending.msg is not None:
            with self.idle:
                self.outstanding -= 1
                self.idle.notify_all()

    def _response(self, pending: Pending) -> bool:
        """Reads one answer (and its 1xx before it) and passes it on; False when the connection is done."""
        while True:
            raw = None
            try:
                raw = self.ur.head(_plausible_response)
                if raw is None:
                    self._answered(pending)
                    self._upstream_closed()
                    return False
                msg = Message.parse(raw, request=False)
                code = int(msg.first[1])
                kind, length = response_framing(msg, pending.method)
            except NotHttp:
                if raw is not None:
                    self.ur.buf[:0] = raw
                self._answered(pending)
                self._raw(self.ur, self.client)
                return False
            if 100 <= code < 200 and code != 101:
                self.client.sendall(raw)
                continue
            break
        tunnel = pending.wants_tunnel and ((code == 101 and pending.method != b"CONNECT") or (
            pending.method == b"CONNECT" and 200 <= code < 300))
        rule = self.rule
        matched = not tunnel and rule.target == "Response" and rule.matches_response(pending.msg, msg)
        if matched and rule.abort:
            self._answered(pending)
            self.reset()
            return False
        if matched and rule.delay:
            time.sleep(rule.delay)
        if matched:
            self._edited_response(pending, msg, kind, length)
        else:
            self.client.sendall(raw)
            relay(self.ur, self.client, kind, length)
        self._answered(pending, tunnel)
        if tunnel:
            self._raw(self.ur, self.client)
            return False
        if kind == "close":
            self._upstream_closed()
            return False
        return True

    def _edited_response(self, pending: Pending, msg: Message, kind: str, length: int) -> None:
        rule = self.rule
        edited = rule.edit_response(msg)
        new_code = int(edited.first[1])
        bodiless = pending.method == b"HEAD" or new_code in (204, 304)
        if bodiless:
            relay(self.ur, None, kind, length)
            if new_code == 204:
                edited.remove(b"content-length")
                edited.remove(b"transfer-encoding")
            self.client.sendall(edited.build())
            return
        if not rule.edits_body or (kind == "length" and length > MAX_BUFFERED and rule.r_body is None):
            if kind == "none":
                _set_length(edited, 0)  # e.g. a 204 turned into a 200: it still has no body
            self.client.sendall(edited.build())
            relay(self.ur, self.client, kind, length)
            return
        if rule.r_body is not None and rule.p_body is MISSING:
            relay(self.ur, None, kind, length)
            decoded, raw, complete = b"", b"", True
        else:
            decoded, raw, complete = read_body(self.ur, kind, length)
        body = rule.body(decoded) if complete else None
        if body is None:
            if kind == "none":
                _set_length(edited, 0)
            self.client.sendall(edited.build() + raw)
            if not complete:
                relay(self.ur, self.client, kind, 0)
            return
        _set_length(edited, len(body))
        self.client.sendall(edited.build() + body)

    def _upstream_closed(self) -> None:
        """The server closed: so does the client's side (and the request thread's read wakes up)."""
        if not self.aborted:
            _shutdown(self.client, socket.SHUT_WR)
            _shutdown(self.client, socket.SHUT_RD)

    def _raw(self, reader: Reader, out: socket.socket) -> None:
        """Not HTTP (or upgraded): the bytes go through unread, then the half-close does too."""
        if reader.buf:
            out.sendall(bytes(reader.buf))
            reader.buf.clear()
        while data := reader.sock.recv(CHUNK):
            out.sendall(data)
        _shutdown(out, socket.SHUT_WR)


def original_destination(sock: socket.socket) -> tuple[Any, ...]:
    """Where a REDIRECTed connection was going, from conntrack."""
    if sock.family == socket.AF_INET:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack_from("!H", raw, 2)[0]
    raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
    port, flow = struct.unpack_from("!HI", raw, 2)
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flow, struct.unpack_from("I", raw, 24)[0]


def handle(rule: Rule, client: socket.socket, own_ports: set[int], slots: threading.BoundedSemaphore) -> None:
    try:
        _handle(rule, client, own_ports)
    finally:
        slots.release()


def _handle(rule: Rule, client: socket.socket, own_ports: set[int]) -> None:
    idle = IDLE + rule.delay  # a delayed answer must not look like an idle connection
    client.settimeout(idle)
    try:
        destination = original_destination(client)
        if destination[1] != rule.port or destination[1] in own_ports:
            raise OSError("not a redirected connection to the fault's port")
        upstream = socket.socket(client.family, socket.SOCK_STREAM)
        upstream.settimeout(CONNECT_TIMEOUT)
        upstream.connect(destination)
    except OSError:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # the server cannot be reached: the client sees a reset, as it would directly
        return
    upstream.settimeout(idle)
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Connection(rule, client, upstream).run()


def _listen(family: int, address: str) -> socket.socket | None:
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, 0))
        sock.listen(1024)
    except OSError:
        sock.close()
        return None
    return sock


def main() -> None:
    rule = Rule(json.loads(sys.stdin.buffer.read()))
    # Every address: REDIRECT sends to the address of whichever interface the connection came in on.
    v4, v6 = _listen(socket.AF_INET, "0.0.0.0"), _listen(socket.AF_INET6, "::")  # noqa: S104
    if v4 is None:
        sys.exit("cannot listen on IPv4")
    listeners = [s for s in (v4, v6) if s is not None]
    own = {s.getsockname()[1] for s in listeners}
    print(f"READY {v4.getsockname()[1]} {v6.getsockname()[1] if v6 else 0}", flush=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the agent closes its pipes: nothing may write to them any more
        os.dup2(devnull, fd)
    threading.stack_size(512 * 1024)
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    selector = selectors.DefaultSelector()
    for sock in listeners:
        selector.register(sock, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            try:
                client, _ = key.fileobj.accept()  # type: ignore[union-attr]
            except OSError:
                continue
            if not slots.acquire(blocking=False):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            threading.Thread(target=handle, args=(rule, client, own, slots), daemon=True).start()


if __name__ == "__main__":
    main()
