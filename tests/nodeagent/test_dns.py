"""DNS faults for real: a DNS server of the test's own in namespace b, a client in namespace a asking it
directly (as if a's resolv.conf named it), and the agent's responder in a catching a's queries.

The wire format here (the client's queries, the upstream's answers) is written independently of
nodeagent.executors.dns_responder, so the two check each other.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeagent.executors import dns, dns_responder, inject, recover, validate
from nodeagent.executors.dns_responder import Config, Malformed, Matcher, decide, parse_question, read_name
from nodeagent.executors.namespaces import run, run_in
from nodeagent.orders import FaultOrder, Refused, Target
from tests.nodeagent.netns import Lab, fault_id, needs_root

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
A, AAAA, MX = 1, 28, 15
NOERROR, FORMERR, SERVFAIL = 0, 1, 2
UPSTREAM_V4, UPSTREAM_V6 = "192.0.2.10", "2001:db8::10"  # what the test's server answers for every name
OTHER_V4 = "192.0.2.20"  # the second server's answer (network-dns dns-server)


# The test's own DNS wire format ---------------------------------------------------------------------


def query(name: str, qtype: int = A, ident: int = 0x1234) -> bytes:
    labels = [label.encode() for label in name.rstrip(".").split(".") if label]
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += length + 1


@dataclass
class Reply:
    ident: int
    rcode: int
    addresses: list[str] = field(default_factory=list)


def parse_reply(data: bytes) -> Reply:
    ident, flags, qdcount, ancount, _, _ = struct.unpack_from("!HHHHHH", data)
    assert flags & 0x8000, "not a response"
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(data, pos) + 4
    addresses = []
    for _ in range(ancount):
        pos = _skip_name(data, pos)
        rtype, _, _, length = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        if rtype in (A, AAAA):
            addresses.append(str(ipaddress.ip_address(data[pos:pos + length])))
        pos += length
    return Reply(ident, flags & 0xF, addresses)


def _upstream_answer(data: bytes, address4: str, address6: str) -> bytes:
    end = _skip_name(data, 12)
    qtype = struct.unpack_from("!H", data, end)[0]
    question = data[12:end + 4]
    answers = b""
    if qtype in (A, AAAA):
        raw = ipaddress.ip_address(address4 if qtype == A else address6).packed
        answers = struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(raw)) + raw
    return data[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if answers else 0, 0, 0) + question + answers


def sock(lab: Lab, netns: str, ip: str, kind: int) -> socket.socket:
    """A socket of ip's family made inside the namespace (lab.sock makes IPv4 ones only)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = run_in(netns, lambda: socket.socket(family, kind))
    lab.sockets.append(s)
    return s


def upstream(lab: Lab, ip: str, address4: str = UPSTREAM_V4, address6: str = UPSTREAM_V6) -> list[str]:
    """A DNS server on ip:53 (udp and tcp) in namespace b answering every A / AAAA with fixed addresses.
    Returns the list of the names it was asked, as they came."""
    asked: list[str] = []

    def name_of(data: bytes) -> str:
        pos, labels = 12, []
        while data[pos]:
            labels.append(data[pos + 1:pos + 1 + data[pos]].decode(errors="replace"))
            pos += data[pos] + 1
        return ".".join(labels)

    udp = sock(lab, lab.path_b, ip, socket.SOCK_DGRAM)
    udp.bind((ip, 53))
    udp.settimeout(0.2)
    tcp = sock(lab, lab.path_b, ip, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((ip, 53))
    tcp.listen(8)
    tcp.settimeout(0.2)

    def serve_udp() -> None:
        while not lab._stop.is_set():
            try:
                data, peer = udp.recvfrom(4096)
                asked.append(name_of(data))
                udp.sendto(_upstream_answer(data, address4, address6), peer)
            except Exception:  # noqa: BLE001, S112 - timeouts, and the garbage the tests send on purpose
                continue

    def serve_tcp() -> None:
        while not lab._stop.is_set():
            try:
                conn, _ = tcp.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.settimeout(2)
                    length = struct.unpack("!H", conn.recv(2))[0]
                    data = b""
                    while len(data) < length:
                        data += conn.recv(length - len(data))
                    asked.append(name_of(data))
                    answer = _upstream_answer(data, address4, address6)
                    conn.sendall(struct.pack("!H", len(answer)) + answer)
                except Exception:  # noqa: BLE001, S112
                    continue

    threading.Thread(target=serve_udp, daemon=True).start()
    threading.Thread(target=serve_tcp, daemon=True).start()
    return asked


def ask(lab: Lab, name: str, qtype: int = A, tcp: bool = False, timeout: float = 2.0,
        sock_: socket.socket | None = None, server: str | None = None) -> Reply | None:
    """A query from namespace a to server:53 (lab.ip_b); None when nothing answers in time. The answer
    must come back from server:53, as the client sent it: the redirect is invisible to the client."""
    server = server or lab.ip_b
    data = query(name, qtype, ident=int.from_bytes(os.urandom(2), "big"))
    if tcp:
        s = sock(lab, lab.path_a, server, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((server, 53))
            s.sendall(struct.pack("!H", len(data)) + data)
            length = struct.unpack("!H", s.recv(2))[0]
            answer = b""
            while len(answer) < length:
                answer += s.recv(length - len(answer))
        except (OSError, struct.error):
            return None
        finally:
            s.close()
    else:
        s = sock_ or sock(lab, lab.path_a, server, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            s.sendto(data, (server, 53))
            answer, peer = s.recvfrom(4096)
        except OSError:
            return None
        finally:
            if sock_ is None:
                s.close()
        assert peer[:2] == (server, 53), f"the answer came from {peer}"
    reply = parse_reply(answer)
    assert reply.ident == struct.unpack("!H", data[:2])[0]
    return reply


def left(lab: Lab, order: FaultOrder) -> list[str]:
    """Anything of the fault's still there: nat rules in a, its responder, its registry entry."""
    short = validate.short_id(order.fault_id)
    found = run_in(lab.path_a, dns.leftovers)
    found += [f"responder pid {pid}" for pid in dns.marked(short)]
    found += [f"running {fid}" for fid in dns.running()]
    return found


def dns_chaos(lab: Lab, action: str, patterns: list[str]) -> FaultOrder:
    return FaultOrder(fault_id(), "DNSChaos", action, {"patterns": patterns, "containerNames": []},
                      Target(kind="netns", name=lab.a))


# Unit tests: patterns, wire format, decisions ------------------------------------------------------


@pytest.mark.parametrize(("patterns", "name", "hit"), [
    (["*.chaos.test"], "www.chaos.test", True),
    (["*.chaos.test"], "a.b.chaos.test.", True),
    (["*.chaos.test"], "WWW.Chaos.TEST", True),
    (["*.chaos.test"], "chaos.test", False),
    (["*.chaos.test"], "www.chaos.testing", False),
    (["*.chaos.test"], "wwwchaos.test", False),
    (["chaos-mesh.*"], "chaos-mesh.org", True),
    (["chaos-mesh.*"], "chaos-mesh.org.", True),
    (["chaos-mesh.*"], "www.chaos-mesh.org", False),
    (["google.com"], "google.com", True),
    (["google.com"], "www.google.com", False),
    (["google.com."], "GOOGLE.com", True),
    (["ch?os.test"], "chaos.test", True),
    (["ch?os.test"], "chos.test", False),
    (["ch?os.test"], "chaaos.test", False),
    (["a.b"], "aXb", False),  # the dot is a dot, not "any character"
    (["x.test", "*.y.test"], "q.y.test", True),
    ([], "anything.at.all", True),  # no patterns: every name (the catalogue's rule)
    (["*a*b?c"], "xxaYYbZc", True),
    (["*a*b?c"], "xxaYYbc", False),
    (["a*"], "a", True),
    (["**"], "", True),
])
def test_pattern_matching(patterns: list[str], name: str, hit: bool) -> None:
    assert Matcher(patterns)(name) is hit


def test_pathological_patterns_match_in_linear_time() -> None:
    patterns = ["*a" * 8 + "*b"] * 256  # a regular expression would backtrack for ages on this
    start = time.monotonic()
    assert not Matcher(patterns)("a" * 250)
    assert time.monotonic() - start < 2


def test_agent_refuses_patterns_that_are_not_domain_patterns() -> None:
    for bad in ["a b", "a;b", "$(x)", "a..b", ".a", "a/b", "", "x" * 254, "[ab].test", 5, "*a" * 9]:
        with pytest.raises(Refused):
            dns.pattern(bad)
    for good in ["*.chaos.test", "chaos-mesh.*", "ch?os.test", "*", "google.com.", "_srv.x"]:
        assert dns.pattern(good) == good


def test_parse_question_and_answers() -> None:
    data = query("WWW.Chaos.Test", AAAA, ident=0xBEEF)
    q = parse_question(data)
    assert (q.id, q.name, q.qtype, q.qclass, q.end) == (0xBEEF, "www.chaos.test", AAAA, 1, len(data))
    config = Config("error", Matcher(["*.chaos.test"]))
    action, answer = decide(data, config)
    assert action == dns_responder.ANSWER and answer is not None
    reply = parse_reply(answer)
    assert (reply.ident, reply.rcode, reply.addresses) == (0xBEEF, SERVFAIL, [])
    assert answer[12:] == data[12:], "the question comes back as asked, its case kept"
    assert struct.unpack_from("!H", answer, 2)[0] & 0x0100, "RD is copied"
    assert decide(query("www.other.test"), config) == (dns_responder.FORWARD, None)

    random = Config("random", Matcher(["*.chaos.test"]))
    reply_a = parse_reply(decide(query("x.chaos.test", A), random)[1] or b"")
    reply_6 = parse_reply(decide(query("x.chaos.test", AAAA), random)[1] or b"")
    reply_mx = parse_reply(decide(query("x.chaos.test", MX), random)[1] or b"")
    assert reply_a.rcode == NOERROR and ipaddress.ip_address(reply_a.addresses[0]).version == 4
    assert reply_6.rcode == NOERROR and ipaddress.ip_address(reply_6.addresses[0]).version == 6
    assert reply_mx.rcode == SERVFAIL and not reply_mx.addresses  # as Chaos Mesh: only A and AAAA are faked

    mapped = Config("pass", mapped=("db.internal", ipaddress.ip_address("198.51.100.7")))
    assert parse_reply(decide(query("DB.internal."), mapped)[1] or b"").addresses == ["198.51.100.7"]
    assert decide(query("db.internal", AAAA), mapped)[0] == dns_responder.FORWARD  # not the mapped family
    assert decide(query("other.internal"), mapped)[0] == dns_responder.FORWARD


def test_compression_pointers_are_followed_backwards_only() -> None:
    header = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    data = header + b"\x05chaos\x04test\x00" + b"\x03www\xc0\x0c"
    assert read_name(data, 24) == ("www.chaos.test", 30)
    for bad in [header + b"\x01x\xc0\x0c",  # back to its own start: a loop
                header + b"\xc0\x04",  # into the header
                header + b"\xc0\x20" + b"\0" * 40,  # forwards
                header + b"\x05chaos\xc0"]:  # cut off
        with pytest.raises(Malformed):
            read_name(bad, 12)
    with pytest.raises(Malformed):
        read_name(header + b"\x05chaos\x04test\x00" + b"\x03www\xc0\x18", 24)  # at its own start


@pytest.mark.parametrize(("data", "expected"), [
    (b"", dns_responder.DROP),
    (b"\x12", dns_responder.DROP),
    (b"\x00" * 11, dns_responder.DROP),
    (struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0) + b"\0\0\1\0\1", dns_responder.DROP),  # a response
    (struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0), dns_responder.ANSWER),  # no question: FORMERR
    (struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x3fabc", dns_responder.ANSWER),  # label past the end
    (struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x01x\x00\x00", dns_responder.ANSWER),  # type cut off
    (struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x80x\x00\x00\x01\x00\x01", dns_responder.ANSWER),  # 0x80
    (struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01", dns_responder.ANSWER),  # self
    (struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5 + b"\0\0\1\0\1",
     dns_responder.ANSWER),  # a name of 321 bytes
    (struct.pack("!HHHHHH", 7, 0x0100, 2, 0, 0, 0) + b"\0\0\1\0\1", dns_responder.FORWARD),  # two questions
    (struct.pack("!HHHHHH", 7, 0x2800, 1, 0, 0, 0) + b"\0\0\1\0\1", dns_responder.FORWARD),  # UPDATE
])
def test_malformed_messages_are_dropped_or_answered_formerr(data: bytes, expected: str) -> None:
    action, answer = decide(data, Config("error"))
    assert action == expected
    if expected == dns_responder.ANSWER:
        assert answer is not None
        ident, flags, qd, an, _, _ = struct.unpack_from("!HHHHHH", answer)
        assert (ident, flags & 0x8000, flags & 0xF, qd, an) == (7, 0x8000, FORMERR, 0, 0)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_never_raises(data: bytes) -> None:
    for config in (Config("error"), Config("random", Matcher(["*.x"])),
                   Config(mapped=("a.b", ipaddress.ip_address("::1")))):
        action, answer = decide(data, config)
        assert action in (dns_responder.DROP, dns_responder.FORWARD, dns_responder.ANSWER)
        if answer is not None:
            assert answer[:2] == data[:2]
    dns_responder.servfail(data)
    list(dns_responder._attrs(data))
    dns_responder._decode_tuple(data)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abc.-*?", max_size=20), st.integers(0, 40), st.binary(min_size=1, max_size=3))
def test_mutated_queries_never_raise(name: str, where: int, junk: bytes) -> None:
    data = bytearray(query(name or "x"))
    position = min(where, len(data) - 1)
    data[position:position + len(junk)] = junk
    decide(bytes(data), Config("random"))


# Real faults in the lab's namespaces --------------------------------------------------------------

@needs_root
def test_error_gives_servfail_for_matching_names_only(lab: Lab) -> None:
    asked = upstream(lab, lab.ip_b)
    before = ask(lab, "www.chaos.test")
    assert before is not None and before.addresses == [UPSTREAM_V4] and before.rcode == NOERROR
    order = dns_chaos(lab, "error", ["*.chaos.test"])
    print(inject(order))
    try:
        asked.clear()
        for name in ("www.chaos.test", "API.Chaos.Test.", "a.b.chaos.test"):
            for tcp in (False, True):
                reply = ask(lab, name, tcp=tcp)
                assert reply is not None and reply.rcode == SERVFAIL and not reply.addresses, (name, tcp)
        assert reply_of(lab, "www.chaos.test", AAAA).rcode == SERVFAIL
        assert not asked, f"matching names reached the upstream: {asked}"
        for tcp in (False, True):
            other = ask(lab, "www.other.test", tcp=tcp)
            assert other is not None and (other.rcode, other.addresses) == (NOERROR, [UPSTREAM_V4])
            plain = ask(lab, "chaos.test", tcp=tcp)  # "*.chaos.test" does not match chaos.test itself
            assert plain is not None and plain.addresses == [UPSTREAM_V4]
        assert asked == ["www.other.test", "chaos.test"] * 2, "forwarded byte for byte, each once"
    finally:
        recover(order)
    after = ask(lab, "www.chaos.test")
    assert after is not None and (after.rcode, after.addresses) == (NOERROR, [UPSTREAM_V4])
    assert left(lab, order) == []
    recover(order)  # idempotent


@needs_root
def test_error_over_ipv6(lab: Lab) -> None:
    """A query to an IPv6 server is caught too (ip6tables, the responder on ::1)."""
    ip_a, ip_b = f"fd00:250:{lab.n}::1", f"fd00:250:{lab.n}::2"
    run(["ip", "-n", lab.a, "addr", "add", f"{ip_a}/64", "dev", "veth0", "nodad"])
    run(["ip", "-n", lab.b, "addr", "add", f"{ip_b}/64", "dev", "veth1", "nodad"])
    asked = upstream(lab, ip_b)
    assert (ask(lab, "www.chaos.test", server=ip_b) or Reply(0, -1)).addresses == [UPSTREAM_V4]
    order = dns_chaos(lab, "error", ["*.chaos.test"])
    what = inject(order)
    try:
        assert "udp6" in what and "not intercepted" not in what
        asked.clear()
        for tcp in (False, True):
            assert (ask(lab, "www.chaos.test", AAAA, tcp=tcp, server=ip_b) or Reply(0, -1)).rcode == SERVFAIL
            other = ask(lab, "www.other.test", AAAA, tcp=tcp, server=ip_b)
            assert other is not None and other.addresses == [UPSTREAM_V6]
        assert asked == ["www.other.test"] * 2
    finally:
        recover(order)
    assert (ask(lab, "www.chaos.test", server=ip_b) or Reply(0, -1)).addresses == [UPSTREAM_V4]
    assert left(lab, order) == []


def reply_of(lab: Lab, name: str, qtype: int = A) -> Reply:
    reply = ask(lab, name, qtype)
    assert reply is not None, f"no answer for {name}"
    return reply


@needs_root
def test_random_gives_other_addresses_for_matching_names(lab: Lab) -> None:
    upstream(lab, lab.ip_b)
    app = lab.spawn(["sleep", "60"], netns=lab.path_a)  # aimed at a process: the fault takes its namespace
    order = FaultOrder(fault_id(), "DNSChaos", "random", {"patterns": ["*.chaos.test", "exact.example"]},
                       Target(kind="process", pid=app.pid))
    print(inject(order))
    try:
        seen = set()
        for _ in range(3):
            reply = reply_of(lab, "svc.chaos.test")
            assert reply.rcode == NOERROR and len(reply.addresses) == 1
            assert reply.addresses[0] != UPSTREAM_V4
            seen.add(reply.addresses[0])
        assert len(seen) > 1, "the same 'random' address three times"
        six = reply_of(lab, "svc.chaos.test", AAAA)
        assert ipaddress.ip_address(six.addresses[0]).version == 6 and six.addresses[0] != UPSTREAM_V6
        assert reply_of(lab, "EXACT.example").addresses[0] != UPSTREAM_V4
        assert reply_of(lab, "not.exact.example").addresses == [UPSTREAM_V4]
        assert reply_of(lab, "svc.other.test", AAAA).addresses == [UPSTREAM_V6]
    finally:
        recover(order)
    assert reply_of(lab, "svc.chaos.test").addresses == [UPSTREAM_V4]
    assert left(lab, order) == []


@needs_root
def test_network_dns_points_at_another_server_and_maps_a_name(lab: Lab) -> None:
    other = f"10.250.{lab.n}.3"
    run(["ip", "-n", lab.b, "addr", "add", f"{other}/24", "dev", "veth1"])
    upstream(lab, lab.ip_b)
    asked_other = upstream(lab, other, OTHER_V4)
    order = FaultOrder(fault_id(), "PhysicalMachineChaos", "network-dns",
                       {"network-dns": {"dns-server": other, "dns-domain-name": "db.chaos.test",
                                        "dns-ip": "198.51.100.7"}},
                       Target(kind="netns", name=lab.a))
    print(inject(order))
    try:
        assert reply_of(lab, "www.example.test").addresses == [OTHER_V4]  # asked of ip_b, answered by `other`
        via_tcp = ask(lab, "www.example.test", tcp=True)
        assert via_tcp is not None and via_tcp.addresses == [OTHER_V4]
        assert reply_of(lab, "DB.chaos.test").addresses == ["198.51.100.7"]
        # Another type of the mapped name goes on to the DNS server, as past an /etc/hosts line.
        assert reply_of(lab, "db.chaos.test", AAAA).addresses == [UPSTREAM_V6]
        assert asked_other.count("DB.chaos.test") == 0 and "db.chaos.test" in asked_other
    finally:
        recover(order)
    assert reply_of(lab, "www.example.test").addresses == [UPSTREAM_V4]
    assert reply_of(lab, "db.chaos.test").addresses == [UPSTREAM_V4]
    assert left(lab, order) == []


@needs_root
def test_network_dns_without_a_server_uses_chaosds_default(lab: Lab) -> None:
    upstream(lab, lab.ip_b)
    order = FaultOrder(fault_id(), "PhysicalMachineChaos", "network-dns",
                       {"network-dns": {"dns-domain-name": "db.chaos.test", "dns-ip": "198.51.100.7"}},
                       Target(kind="netns", name=lab.a))
    what = inject(order)
    try:
        assert "123.123.123.123" in what
        assert reply_of(lab, "db.chaos.test").addresses == ["198.51.100.7"]
        assert ask(lab, "www.example.test", timeout=0.5) is None  # 123.123.123.123 is out of a's reach
    finally:
        recover(order)
    assert reply_of(lab, "www.example.test").addresses == [UPSTREAM_V4]
    assert left(lab, order) == []


@needs_root
def test_a_client_reusing_its_socket_is_caught_and_released(lab: Lab) -> None:
    """conntrack: a UDP flow that existed before the fault is redirected from its next query on, and a
    redirected flow goes back to its server after recovery (not to the responder's closed port).

    Conntrack runs in a namespace only while some rule needs it; on a real node something always does
    (kube-proxy, docker), so a rule of the test's own keeps it on here, before and after the fault."""
    run(["ip", "netns", "exec", lab.a, "iptables", "-w", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "INVALID",
         "-j", "DROP"])
    upstream(lab, lab.ip_b)
    s = lab.sock(lab.path_a, socket.SOCK_DGRAM)
    s.bind((lab.ip_a, 40053))
    assert (ask(lab, "x.chaos.test", sock_=s) or Reply(0, -1)).addresses == [UPSTREAM_V4]
    order = dns_chaos(lab, "error", ["*.chaos.test"])
    inject(order)
    try:
        assert (ask(lab, "x.chaos.test", sock_=s) or Reply(0, -1)).rcode == SERVFAIL
    finally:
        recover(order)
    assert (ask(lab, "x.chaos.test", sock_=s) or Reply(0, -1)).addresses == [UPSTREAM_V4]
    assert left(lab, order) == []


@needs_root
def test_garbage_does_not_stop_the_responder(lab: Lab) -> None:
    upstream(lab, lab.ip_b)
    order = dns_chaos(lab, "error", [])
    inject(order)
    try:
        header = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
        s = lab.sock(lab.path_a, socket.SOCK_DGRAM)
        s.settimeout(1)
        for junk in [b"", b"\xff", os.urandom(11), os.urandom(300), header, header + b"\xc0\x0c\0\1\0\1",
                     header + b"\x3f" * 70, struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0) + os.urandom(40),
                     os.urandom(1400)]:
            s.sendto(junk, (lab.ip_b, 53))
        s.sendto(header + b"\x01x", (lab.ip_b, 53))  # a question cut short: FORMERR, from ip_b:53
        while True:
            answer, peer = s.recvfrom(4096)
            if answer[:2] == b"\x00\x07" and answer[3] & 0xF == FORMERR:
                break
        assert peer == (lab.ip_b, 53)
        for junk in [b"\x00\x00", b"\xff\xff" + os.urandom(20), b"\x00\x05abc", os.urandom(600)]:
            t = lab.sock(lab.path_a, socket.SOCK_STREAM)
            t.settimeout(1)
            t.connect((lab.ip_b, 53))
            t.sendall(junk)
            t.close()
        reply = reply_of(lab, "still.alive.test")
        assert reply.rcode == SERVFAIL
        assert ask(lab, "still.alive.test", tcp=True) is not None
    finally:
        recover(order)
    assert left(lab, order) == []


@needs_root
def test_agent_killed_mid_fault_then_recovered_by_a_fresh_process(lab: Lab) -> None:
    upstream(lab, lab.ip_b)
    order = dns_chaos(lab, "error", ["*.chaos.test"])
    code = ("import sys, time\n"
            "from nodeagent.orders import FaultOrder\n"
            "from nodeagent.executors import inject\n"
            "print(inject(FaultOrder.from_json(sys.argv[1])), flush=True)\n"
            "time.sleep(60)\n")
    agent = subprocess.Popen([sys.executable, "-c", code, order.to_json()], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = agent.stdout.readline() if agent.stdout else b""
        assert b"SERVFAIL" in line, (line, agent.stderr.read() if agent.poll() is not None and agent.stderr else b"")
    finally:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(5)
    assert reply_of(lab, "www.chaos.test").rcode == SERVFAIL, "the fault holds without its agent"
    assert dns.marked(validate.short_id(order.fault_id)), "the responder outlived the agent"
    assert not dns.running(), "this process never injected it"
    recover(FaultOrder.from_json(order.to_json()))
    assert reply_of(lab, "www.chaos.test").addresses == [UPSTREAM_V4]
    assert left(lab, order) == []


@needs_root
def test_half_injected_and_never_injected_recover_cleanly(lab: Lab) -> None:
    upstream(lab, lab.ip_b)
    order = dns_chaos(lab, "error", ["*.chaos.test"])
    recover(order)  # never injected
    pl = dns.plan(order)
    dns._await_ready(dns._start(pl, order.fault_id))  # the responder runs, the rules never came
    assert dns.marked(pl.short)
    recover(order)
    assert left(lab, order) == []
    assert reply_of(lab, "www.chaos.test").addresses == [UPSTREAM_V4]
    vanishing = f"{lab.a}-v"  # a namespace of this test's own, to go away under the fault
    run(["ip", "netns", "add", vanishing])
    try:
        run(["ip", "-n", vanishing, "link", "set", "lo", "up"])
        doomed = dns_chaos(lab, "error", ["*.chaos.test"])
        doomed = FaultOrder(doomed.fault_id, doomed.kind, doomed.action, doomed.params,
                            Target(kind="netns", name=vanishing))
        inject(doomed)
    finally:
        run(["ip", "netns", "del", vanishing])
    assert dns.marked(validate.short_id(doomed.fault_id)), "its responder keeps the namespace alive"
    recover(doomed)
    assert not dns.marked(validate.short_id(doomed.fault_id)) and not dns.running()


@needs_root
def test_refusals_leave_nothing(lab: Lab) -> None:
    bad = [
        dns_chaos(lab, "error", ["a;b"]),
        dns_chaos(lab, "random", ["x" * 300]),
        FaultOrder(fault_id(), "DNSChaos", "error", {"patterns": "*.x"}, Target(kind="netns", name=lab.a)),
        FaultOrder(fault_id(), "DNSChaos", "error", {}, Target(kind="netns", name="no-such-netns")),
        FaultOrder(fault_id(), "PhysicalMachineChaos", "network-dns", {"network-dns": {"dns-ip": "1.2.3.4"}},
                   Target(kind="netns", name=lab.a)),
        FaultOrder(fault_id(), "PhysicalMachineChaos", "network-dns", {"network-dns": {"dns-server": "x; y"}},
                   Target(kind="netns", name=lab.a)),
        FaultOrder(fault_id(), "PhysicalMachineChaos", "network-dns",
                   {"network-dns": {"dns-domain-name": "-bad-", "dns-ip": "1.2.3.4"}},
                   Target(kind="netns", name=lab.a)),
    ]
    for order in bad:
        with pytest.raises(Refused) as refused:
            inject(order)
        print(refused.value)
        assert left(lab, order) == []
    dark = f"{lab.a}-lo"  # a namespace whose loopback is down: nowhere for the responder to listen
    run(["ip", "netns", "add", dark])
    try:
        order = FaultOrder(fault_id(), "DNSChaos", "error", {}, Target(kind="netns", name=dark))
        with pytest.raises(Refused, match="loopback"):
            inject(order)
        assert run_in(f"/run/netns/{dark}", dns.leftovers) == []
        assert not dns.marked(validate.short_id(order.fault_id)) and not dns.running()
    finally:
        run(["ip", "netns", "del", dark])


@needs_root
def test_capability() -> None:
    name, ok, detail = dns.capability()
    print(name, ok, detail)
    assert (name, ok) == ("dns-proxy", True)
    assert not [ns for ns in run(["ip", "netns", "list"]).stdout.split() if ns.startswith("chaosplane-dnsprobe")]
