"""The DNS responder of DNSChaos and PhysicalMachineChaos network-dns: one process per fault, in the
target's network namespace, answering the DNS queries that iptables redirects to it (nat OUTPUT,
udp/tcp port 53, REDIRECT to the ports it reports).

Standard library only, and run as a script (`python -I -S dns_responder.py ...`), so it imports
nothing of the agent and needs no import path. The agent imports it too, for the wire format and the
conntrack helpers.

- A query for a name matching the patterns is answered here: SERVFAIL (`error`, what Chaos Mesh's DNS
  server answers), or a random address (`random`: A and AAAA; other types SERVFAIL, as Chaos Mesh).
  A mapped name (network-dns dns-domain-name) gets the mapped address for its family.
- Every other query is forwarded byte for byte to the server it was sent to (the original destination,
  read from conntrack for UDP and SO_ORIGINAL_DST for TCP), or to the fixed upstream when one is given
  (network-dns dns-server), and the answer is copied back byte for byte.
- The responder runs with its own group id (`--gid`), which the fault's chain exempts with
  `-m owner --gid-owner`, so its own queries upstream are never redirected back to it.
- Garbage never stops it: shorter than a header, or a response, is dropped; an unparseable question
  gets FORMERR; a failure in one query's handling is that query's only.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import selectors
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

# DNS wire format (RFC 1035) -------------------------------------------------------------------------

HEADER = struct.Struct("!HHHHHH")
QR, OPCODE_RD, AA, RA = 0x8000, 0x7900, 0x0400, 0x0080
NOERROR, FORMERR, SERVFAIL = 0, 1, 2
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
TTL = 10  # Chaos Mesh's chaos answers carry 10 s too
MAX_NAME = 255
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


class Malformed(ValueError):
    """The message claims to be a query but cannot be read as one."""


@dataclass(frozen=True)
class Question:
    id: int
    flags: int
    name: str  # lowercase, no trailing dot; bytes other than [a-z0-9_-] written \DDD
    qtype: int
    qclass: int
    end: int  # offset just after the question


def _label(raw: bytes) -> str:
    return "".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in raw.lower())


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """(name, offset after it). A compression pointer must point past the header and before the part of
    the name that holds it (a well-formed message only points back at names written earlier): no loops."""
    labels: list[str] = []
    total, pos, start, end = 1, offset, offset, None
    while True:
        if pos >= len(data):
            raise Malformed("the name runs past the end of the message")
        length = data[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise Malformed("a compression pointer is cut off")
            pointer = ((length & 0x3F) << 8) | data[pos + 1]
            if not HEADER.size <= pointer < start:
                raise Malformed("a compression pointer that does not point back at an earlier name")
            if end is None:
                end = pos + 2
            pos = start = pointer
            continue
        if length & 0xC0:
            raise Malformed("a reserved label type")
        pos += 1
        if length == 0:
            return ".".join(labels), end if end is not None else pos
        if pos + length > len(data):
            raise Malformed("a label runs past the end of the message")
        total += length + 1
        if total > MAX_NAME:
            raise Malformed("a name longer than 255 bytes")
        labels.append(_label(data[pos:pos + length]))
        pos += length


def parse_question(data: bytes) -> Question:
    """The one question of a standard query; Malformed if it cannot be read."""
    if len(data) < HEADER.size:
        raise Malformed("shorter than a DNS header")
    ident, flags, qdcount, _, _, _ = HEADER.unpack_from(data)
    if qdcount != 1:
        raise Malformed(f"{qdcount} questions")
    name, end = read_name(data, HEADER.size)
    if end + 4 > len(data):
        raise Malformed("the question's type and class are cut off")
    qtype, qclass = struct.unpack_from("!HH", data, end)
    return Question(ident, flags, name, qtype, qclass, end + 4)


def response(data: bytes, q: Question, rcode: int, answers: list[tuple[int, bytes]] | None = None) -> bytes:
    """An answer to `q`: the question as asked (its case kept), then `answers` (type, rdata) for its name."""
    answers = answers or []
    flags = QR | (q.flags & OPCODE_RD) | RA | (AA if answers else 0) | rcode
    out = [HEADER.pack(q.id, flags, 1, len(answers), 0, 0), data[HEADER.size:q.end]]
    for rtype, rdata in answers:  # the name is a pointer to the question's, which starts at offset 12
        out.append(struct.pack("!HHHIH", 0xC000 | HEADER.size, rtype, CLASS_IN, TTL, len(rdata)) + rdata)
    return b"".join(out)


def error_header(data: bytes, rcode: int) -> bytes:
    """A bare header answer (no question) for a query whose question cannot be read."""
    ident, flags = struct.unpack_from("!HH", data)
    return HEADER.pack(ident, QR | (flags & OPCODE_RD) | RA | rcode, 0, 0, 0, 0)


# Names ---------------------------------------------------------------------------------------------


def normalize(name: str) -> str:
    return name.lower().removesuffix(".")


def glob(pattern: str, name: str) -> bool:
    """`*` any run of characters (dots too), `?` one character, the rest literally; the whole name.
    Greedy with one backtrack point (the last star), so at worst len(pattern) * len(name) steps: no
    regular expression to blow up on a pattern such as *a*a*a*a*b."""
    p = s = 0
    star, mark = -1, 0
    while s < len(name):
        if p < len(pattern) and pattern[p] in ("?", name[s]) and pattern[p] != "*":
            p, s = p + 1, s + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, s, p + 1
        elif star >= 0:
            mark += 1
            p, s = star + 1, mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


class Matcher:
    """Glob patterns over whole names (see glob); case-insensitive, a trailing dot ignored. No patterns:
    every name matches (the catalogue's rule)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [normalize(p) for p in patterns]

    def __call__(self, name: str) -> bool:
        name = normalize(name)
        return not self.patterns or any(glob(p, name) for p in self.patterns)


def random_address(qtype: int) -> bytes:
    """A random unicast address: IPv4 outside 0/8, 127/8 and 224/3; IPv6 in 2000::/3."""
    if qtype == TYPE_A:
        while True:
            raw = os.urandom(4)
            if raw[0] not in (0, 127) and raw[0] < 224:
                return raw
    raw = bytearray(os.urandom(16))
    raw[0] = 0x20 | (raw[0] & 0x1F)
    return bytes(raw)


# Decisions -----------------------------------------------------------------------------------------

DROP, FORWARD, ANSWER = "drop", "forward", "answer"


@dataclass
class Config:
    mode: str = "pass"  # error | random | pass
    matcher: Matcher = field(default_factory=lambda: Matcher([]))
    mapped: tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address] | None = None
    upstream: tuple[str, int] | None = None  # None: the query's original destination


def decide(data: bytes, config: Config) -> tuple[str, bytes | None]:
    """(DROP | FORWARD | ANSWER, the answer). Never raises on any input."""
    if len(data) < HEADER.size:
        return DROP, None
    ident, flags, qdcount, _, _, _ = HEADER.unpack_from(data)
    if flags & QR:
        return DROP, None  # a response sent to us: never answered, never forwarded (no loops, no reflection)
    if (flags >> 11) & 0xF != 0 or qdcount != 1:
        return FORWARD, None  # not a standard query with one question: not ours to judge
    try:
        q = parse_question(data)
    except Malformed:
        return ANSWER, error_header(data, FORMERR)
    if config.mapped is not None and q.name == config.mapped[0]:
        address = config.mapped[1]
        wanted = TYPE_A if address.version == 4 else TYPE_AAAA
        if q.qtype == wanted:
            return ANSWER, response(data, q, NOERROR, [(wanted, address.packed)])
        # Other types of a mapped name go on to the DNS server, as they would past an /etc/hosts line.
    if config.mode in ("error", "random") and config.matcher(q.name):
        if config.mode == "random" and q.qtype in (TYPE_A, TYPE_AAAA):
            return ANSWER, response(data, q, NOERROR, [(q.qtype, random_address(q.qtype))])
        return ANSWER, response(data, q, SERVFAIL)
    return FORWARD, None


def servfail(data: bytes) -> bytes | None:
    """SERVFAIL for a query that could not be forwarded (None when it cannot even be answered)."""
    try:
        return response(data, parse_question(data), SERVFAIL)
    except Malformed:
        return error_header(data, SERVFAIL) if len(data) >= HEADER.size else None


# conntrack over netlink (ctnetlink) ----------------------------------------------------------------

NETLINK_NETFILTER = 12
_CT = 1 << 8  # NFNL_SUBSYS_CTNETLINK
CT_NEW, CT_GET, CT_DELETE = _CT | 0, _CT | 1, _CT | 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE = 1, 2, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
NLA_F_NESTED = 0x8000
_NLMSG = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
_IP_ATTRS = {4: (1, 2), 6: (3, 4)}  # CTA_IP_V4_SRC/DST, CTA_IP_V6_SRC/DST


@dataclass(frozen=True)
class Tuple:
    proto: int
    src: str
    sport: int
    dst: str
    dport: int


@dataclass(frozen=True)
class Entry:
    family: int
    orig: Tuple
    reply: Tuple
    raw: bytes  # the CTA_TUPLE_ORIG (and CTA_ZONE) attributes as the kernel gave them, to delete by


def _attr(kind: int, payload: bytes) -> bytes:
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length % 4)


def _attrs(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(type, payload, the whole attribute) of each netlink attribute in `data`."""
    pos = 0
    while pos + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, pos)
        if length < _NLA.size or pos + length > len(data):
            return
        yield kind & 0x3FFF, data[pos + _NLA.size:pos + length], data[pos:pos + length]
        pos += (length + 3) & ~3


def _tuple_attr(kind: int, t: Tuple) -> bytes:
    src, dst = ipaddress.ip_address(t.src), ipaddress.ip_address(t.dst)
    src_attr, dst_attr = _IP_ATTRS[src.version]
    ips = _attr(CTA_TUPLE_IP | NLA_F_NESTED, _attr(src_attr, src.packed) + _attr(dst_attr, dst.packed))
    proto = _attr(CTA_TUPLE_PROTO | NLA_F_NESTED, _attr(CTA_PROTO_NUM, bytes([t.proto]))
                  + _attr(CTA_PROTO_SRC_PORT, struct.pack("!H", t.sport))
                  + _attr(CTA_PROTO_DST_PORT, struct.pack("!H", t.dport)))
    return _attr(kind | NLA_F_NESTED, ips + proto)


def _decode_tuple(payload: bytes) -> Tuple | None:
    ips: dict[int, str] = {}
    proto: dict[int, bytes] = {}
    for kind, value, _ in _attrs(payload):
        if kind == CTA_TUPLE_IP:
            ips = {k: str(ipaddress.ip_address(v)) for k, v, _ in _attrs(value) if len(v) in (4, 16)}
        elif kind == CTA_TUPLE_PROTO:
            proto = {k: v for k, v, _ in _attrs(value)}
    src, dst = ips.get(1) or ips.get(3), ips.get(2) or ips.get(4)
    if not (src and dst and len(proto.get(CTA_PROTO_NUM, b"")) == 1 and len(proto.get(CTA_PROTO_SRC_PORT, b"")) == 2
            and len(proto.get(CTA_PROTO_DST_PORT, b"")) == 2):
        return None  # not a port-carrying protocol (icmp)
    return Tuple(proto[CTA_PROTO_NUM][0], src, struct.unpack("!H", proto[CTA_PROTO_SRC_PORT])[0], dst,
                 struct.unpack("!H", proto[CTA_PROTO_DST_PORT])[0])


class Conntrack:
    """The conntrack table of the network namespace this socket is made in (needs CAP_NET_ADMIN)."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        self.sock.settimeout(timeout)
        self.sock.bind((0, 0))
        self.seq = int.from_bytes(os.urandom(3), "big")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conntrack:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, kind: int, flags: int, family: int, body: bytes) -> list[bytes]:
        """The payloads (past nfgenmsg) of the answers; OSError for a netlink error."""
        self.seq += 1
        payload = struct.pack("!BBH", family, 0, 0) + body
        self.sock.send(_NLMSG.pack(_NLMSG.size + len(payload), kind, NLM_F_REQUEST | flags, self.seq, 0) + payload)
        out: list[bytes] = []
        while True:
            data = self.sock.recv(1 << 18)
            pos = 0
            while pos + _NLMSG.size <= len(data):
                length, mtype, _, seq, _ = _NLMSG.unpack_from(data, pos)
                if length < _NLMSG.size:
                    return out
                body_of = data[pos + _NLMSG.size:pos + length]
                pos += (length + 3) & ~3
                if seq != self.seq:
                    continue  # the late answer of an earlier request that timed out
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body_of)[0] if len(body_of) >= 4 else 0
                    if code:
                        raise OSError(code, os.strerror(code))
                    return out
                out.append(body_of[4:])
                if not flags & NLM_F_DUMP and not flags & NLM_F_ACK:
                    return out

    def original_destination(self, proto: int, local: tuple[str, int], client: tuple[str, int]) -> tuple[str, int]:
        """Where the packet from `client` to `local` (after a REDIRECT) was first sent."""
        reply = Tuple(proto, local[0], local[1], client[0], client[1])
        family = socket.AF_INET if ipaddress.ip_address(local[0]).version == 4 else socket.AF_INET6
        for payload in self._request(CT_GET, NLM_F_ACK, family, _tuple_attr(CTA_TUPLE_REPLY, reply)):
            for kind, value, _ in _attrs(payload):
                if kind == CTA_TUPLE_ORIG:
                    orig = _decode_tuple(value)
                    if orig is not None:
                        return orig.dst, orig.dport
        raise OSError(f"no conntrack entry for {client} -> {local}")

    def entries(self) -> list[Entry]:
        found = []
        for payload in self._request(CT_GET, NLM_F_DUMP, socket.AF_UNSPEC, b""):
            family = 0
            orig = reply = None
            raw = b""
            for kind, value, whole in _attrs(payload):
                if kind == CTA_TUPLE_ORIG:
                    orig = _decode_tuple(value)
                    raw += whole
                    family = socket.AF_INET if orig and ipaddress.ip_address(orig.src).version == 4 \
                        else socket.AF_INET6
                elif kind == CTA_TUPLE_REPLY:
                    reply = _decode_tuple(value)
                elif kind == CTA_ZONE:
                    raw += whole
            if orig is not None and reply is not None:
                found.append(Entry(family, orig, reply, raw))
        return found

    def delete(self, entry: Entry) -> None:
        try:
            self._request(CT_DELETE, NLM_F_ACK, entry.family, entry.raw)
        except FileNotFoundError:
            pass  # gone already (it timed out, or another deleter was first)


def redirected_dns(entry: Entry) -> bool:
    """A DNS flow that a REDIRECT sent to a local port (REDIRECT in OUTPUT maps to 127.0.0.1 / ::1)."""
    return (entry.orig.dport == 53 and entry.orig.proto in (6, 17) and entry.reply.src in ("127.0.0.1", "::1")
            and entry.reply.sport != 53)


def plain_udp_dns(entry: Entry) -> bool:
    """A UDP DNS flow that goes where it was sent (not NATed)."""
    return (entry.orig.dport == 53 and entry.orig.proto == 17 and entry.reply.src == entry.orig.dst
            and entry.reply.sport == 53)


def flush(which: Callable[[Entry], bool]) -> int:
    """Delete the conntrack entries for which `which(entry)` is true; how many were deleted."""
    deleted = 0
    with Conntrack() as ct:
        for entry in ct.entries():
            if which(entry):
                ct.delete(entry)
                deleted += 1
    return deleted


# The server ----------------------------------------------------------------------------------------

FORWARD_TIMEOUT = 3.0
TCP_IDLE = 10.0
MAX_WORKERS = 64
UDP, TCP = 17, 6
SO_ORIGINAL_DST = 80  # SOL_IP; IP6T_SO_ORIGINAL_DST is 80 in SOL_IPV6 too


def _family(address: str) -> int:
    return socket.AF_INET if ipaddress.ip_address(address).version == 4 else socket.AF_INET6


def forward_udp(data: bytes, upstream: tuple[str, int]) -> bytes | None:
    """The upstream's answer to `data` (the same id), or None after FORWARD_TIMEOUT."""
    with socket.socket(_family(upstream[0]), socket.SOCK_DGRAM) as s:
        s.settimeout(FORWARD_TIMEOUT)
        s.connect(upstream)
        s.send(data)
        while True:
            try:
                answer = s.recv(1 << 16)
            except OSError:
                return None
            if answer[:2] == data[:2]:
                return answer


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = conn.recv(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(conn: socket.socket) -> bytes | None:
    """One length-prefixed DNS message from a TCP stream (None at its end)."""
    head = _recv_exact(conn, 2)
    if head is None:
        return None
    (length,) = struct.unpack("!H", head)
    return _recv_exact(conn, length) if length else None


def original_dst_tcp(conn: socket.socket) -> tuple[str, int]:
    if conn.family == socket.AF_INET:
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack("!H", raw[2:4])[0]
    raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack("!H", raw[2:4])[0]


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.listeners: dict[str, socket.socket] = {}
        self.pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="dns")
        self.slots = threading.BoundedSemaphore(MAX_WORKERS * 4)  # beyond that, queries are dropped

    def bind(self) -> dict[str, int]:
        """udp4/tcp4 on 127.0.0.1 and udp6/tcp6 on ::1 (when the namespace has IPv6), each on a free port."""
        for version, family, host in ((4, socket.AF_INET, "127.0.0.1"), (6, socket.AF_INET6, "::1")):
            made = {}
            try:
                for proto, kind in (("udp", socket.SOCK_DGRAM), ("tcp", socket.SOCK_STREAM)):
                    s = socket.socket(family, kind)
                    made[f"{proto}{version}"] = s
                    s.bind((host, 0))
                    if kind == socket.SOCK_STREAM:
                        s.listen(64)
            except OSError:
                for s in made.values():
                    s.close()
                if version == 4:
                    raise
                continue
            self.listeners.update(made)
        return {name: s.getsockname()[1] for name, s in self.listeners.items()}

    def upstream_of(self, proto: int, local: tuple[str, int], client: tuple[str, int]) -> tuple[str, int] | None:
        if self.config.upstream is not None:
            return self.config.upstream
        try:
            with Conntrack() as ct:
                found = ct.original_destination(proto, local, client)
        except OSError:
            return None
        return None if found == local else found  # sent to us directly: there is nowhere to forward

    def on_udp(self, sock: socket.socket, data: bytes, client: tuple[str, int]) -> None:
        try:
            action, answer = decide(data, self.config)
            if action == FORWARD:
                upstream = self.upstream_of(UDP, sock.getsockname()[:2], client[:2])
                answer = forward_udp(data, upstream) if upstream is not None else servfail(data)
            if answer is not None:
                sock.sendto(answer, client)
        except Exception:  # noqa: BLE001, S110 - one query's failure is that query's only
            pass
        finally:
            self.slots.release()

    def on_tcp(self, conn: socket.socket, client: tuple[str, int]) -> None:
        upstream_conn: socket.socket | None = None
        try:
            conn.settimeout(TCP_IDLE)
            while True:
                data = read_message(conn)
                if data is None:
                    return
                action, answer = decide(data, self.config)
                if action == DROP:
                    return
                if action == FORWARD:
                    if upstream_conn is None:
                        upstream = self.config.upstream
                        if upstream is None:
                            found = original_dst_tcp(conn)
                            upstream = None if found == conn.getsockname()[:2] else found
                        if upstream is not None:
                            upstream_conn = socket.create_connection(upstream, timeout=FORWARD_TIMEOUT)
                    if upstream_conn is None:
                        answer = servfail(data)
                    else:
                        upstream_conn.sendall(struct.pack("!H", len(data)) + data)
                        answer = read_message(upstream_conn)
                if answer is None:
                    return
                conn.sendall(struct.pack("!H", len(answer)) + answer)
        except Exception:  # noqa: BLE001, S110 - one connection's failure is that connection's only
            pass
        finally:
            conn.close()
            if upstream_conn is not None:
                upstream_conn.close()
            self.slots.release()

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        for s in self.listeners.values():
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if s.type == socket.SOCK_DGRAM:
                        data, client = s.recvfrom(1 << 16)
                        if self.slots.acquire(blocking=False):
                            self.pool.submit(self.on_udp, s, data, client)
                    else:
                        conn, client = s.accept()
                        conn.setblocking(True)
                        if self.slots.acquire(blocking=False):
                            threading.Thread(target=self.on_tcp, args=(conn, client), daemon=True).start()
                        else:
                            conn.close()
                except OSError:
                    continue


def parse_args(argv: list[str]) -> tuple[Config, int | None]:
    parser = argparse.ArgumentParser(prog="dns_responder")
    parser.add_argument("--mode", choices=("error", "random", "pass"), default="pass")
    parser.add_argument("--pattern", action="append", default=[])
    parser.add_argument("--map", help="NAME=ADDRESS")
    parser.add_argument("--upstream", help="forward here instead of to the original destination")
    parser.add_argument("--gid", type=int)
    args = parser.parse_args(argv)
    config = Config(args.mode, Matcher(args.pattern))
    if args.map:
        name, _, address = args.map.partition("=")
        config.mapped = (normalize(name), ipaddress.ip_address(address))
    if args.upstream:
        config.upstream = (str(ipaddress.ip_address(args.upstream)), 53)
    return config, args.gid


def main(argv: list[str] | None = None) -> int:
    """Bind, say `ready udp4=PORT tcp4=PORT [udp6=PORT tcp6=PORT]` on stdout and close it, then serve."""
    try:
        config, gid = parse_args(sys.argv[1:] if argv is None else argv)
        if gid is not None:  # before any socket: the fault's chain exempts this group's sockets
            os.setgroups([])
            os.setresgid(gid, gid, gid)
        server = Server(config)
    except (OSError, ValueError) as error:
        print(f"error: {error}", flush=True)
        return 1
    try:
        ports = server.bind()
    except OSError as error:
        print(f"error: cannot listen on 127.0.0.1 in the target's network namespace: {error}", flush=True)
        return 1
    print("ready " + " ".join(f"{name}={port}" for name, port in sorted(ports.items())), flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the agent may go away: nothing is written to its pipe after this
    os.close(devnull)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
