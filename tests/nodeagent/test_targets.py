"""Targets: the host, a netns by name or PID, a process by PID or name, and a container by id through its
runtime: Docker's HTTP API and the CRI gRPC API, each answered by a small stand-in server on a unix
socket that speaks the real wire format (Docker's JSON response shape; CRI protobuf over gRPC)."""
from __future__ import annotations

import http.server
import json
import os
import socketserver
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from nodeagent.executors import containers, inject, recover
from nodeagent.executors.namespaces import resolve
from nodeagent.orders import FaultOrder, Refused, Target
from tests.nodeagent.netns import Lab, fault_id, needs_root

CID = "4f66ad9a0b2e1c3d5e7f9a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d"


def docker_inspect(pid: int) -> dict:
    """The shape of Docker Engine API's GET /containers/{id}/json (trimmed to the fields that matter)."""
    return {
        "Id": CID, "Created": "2025-01-01T00:00:00.000000000Z", "Path": "sleep", "Args": ["60"],
        "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "OOMKilled": False,
                  "Dead": False, "Pid": pid, "ExitCode": 0, "Error": "", "StartedAt": "2025-01-01T00:00:01Z",
                  "FinishedAt": "0001-01-01T00:00:00Z"},
        "Image": "sha256:" + "0" * 64, "Name": "/web", "RestartCount": 0, "Driver": "overlay2",
        "HostConfig": {"NetworkMode": "bridge"}, "Config": {"Hostname": "4f66ad9a0b2e", "Image": "nginx"},
        "NetworkSettings": {"SandboxKey": f"/proc/{pid}/ns/net"},
    }


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """A stand-in dockerd on a unix socket; tests put container id -> pid in the returned dict."""
    running: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "containers" and parts[2] == "json" and parts[1] in running:
                status, body = 200, docker_inspect(running[parts[1]])
            else:
                status, body = 404, {"message": f"No such container: {parts[1] if len(parts) > 1 else ''}"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    path = str(tmp_path / "docker.sock")
    server = _UnixHTTPServer(path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setitem(containers.SOCKETS, "docker", path)
    monkeypatch.setitem(containers.SOCKETS, "containerd", str(tmp_path / "absent.sock"))
    monkeypatch.setitem(containers.SOCKETS, "cri-o", str(tmp_path / "absent2.sock"))
    try:
        yield running
    finally:
        server.shutdown()
        server.server_close()


def _message(*fields: tuple[int, bytes]) -> bytes:
    return b"".join(bytes([n << 3 | 2]) + containers._varint(len(v)) + v for n, v in fields)


@pytest.fixture
def cri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """A stand-in containerd answering runtime.v1.RuntimeService/ContainerStatus (verbose) over gRPC."""
    running: dict[str, int] = {}
    seen: list[bytes] = []

    def status(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(request)
        fields = dict(containers._fields(request))
        cid = bytes(fields.get(1, b"")).decode()
        if cid not in running:
            context.abort(grpc.StatusCode.NOT_FOUND, f"an error occurred when try to find container {cid!r}")
        info = json.dumps({"sandboxID": "abc", "pid": running[cid], "removing": False}).encode()
        return _message((1, _message((1, cid.encode()))), (2, _message((1, b"info"), (2, info))))

    handler = grpc.method_handlers_generic_handler(
        "runtime.v1.RuntimeService", {"ContainerStatus": grpc.unary_unary_rpc_method_handler(status)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    path = str(tmp_path / "containerd.sock")
    server.add_insecure_port(f"unix://{path}")
    server.start()
    monkeypatch.setitem(containers.SOCKETS, "containerd", path)
    monkeypatch.setitem(containers.SOCKETS, "docker", str(tmp_path / "absent.sock"))
    try:
        yield running
    finally:
        server.stop(None)
    assert all(dict(containers._fields(r)).get(2) == 1 for r in seen), "verbose was not asked for"


def test_cri_messages_round_trip() -> None:
    request = containers.encode_status_request(CID)
    assert dict(containers._fields(request)) == {1: CID.encode(), 2: 1}
    answer = _message((1, _message((1, b"x"))), (2, _message((1, b"info"), (2, b'{"pid": 42}'))))
    assert containers.decode_status_info(answer) == {"info": '{"pid": 42}'}


@needs_root
def test_resolve_host_netns_and_process(lab: Lab, tmp_path: Path) -> None:
    assert resolve(Target()).netns is None
    assert resolve(Target(kind="netns", name=lab.a)).netns == lab.path_a
    sleeper = lab.spawn(["sleep", "60"], netns=lab.path_a)
    by_pid = resolve(Target(kind="netns", pid=sleeper.pid))
    assert by_pid.netns == f"/proc/{sleeper.pid}/ns/net"
    assert os.stat(by_pid.netns).st_ino == os.stat(lab.path_a).st_ino
    name = f"cpt{os.getpid() % 100000}targ"
    os.symlink("/bin/sleep", tmp_path / name)
    named = lab.spawn([str(tmp_path / name), "60"], netns=lab.path_b)
    import time

    time.sleep(0.1)
    found = resolve(Target(kind="process", name=name))
    assert found.pid == named.pid and os.stat(found.netns).st_ino == os.stat(lab.path_b).st_ino
    for bad in (Target(kind="netns", name="absent-ns"), Target(kind="process", name="no-such-proc"),
                Target(kind="process", pid=4194000), Target(kind="netns")):
        with pytest.raises(Refused):
            resolve(bad)


@needs_root
def test_docker_container_network_fault_and_kill(lab: Lab, docker: dict[str, int]) -> None:
    main = lab.spawn(["sleep", "60"], netns=lab.path_a)
    docker[CID] = main.pid
    lab.tcp_server(lab.path_b, lab.ip_b, 8002)
    target = Target(kind="container", container_id=CID, runtime="docker")
    order = FaultOrder(fault_id(), "NetworkChaos", "partition", {"direction": "to", "externalTargets": [lab.ip_b]},
                       target)
    print(inject(order))
    try:
        assert not lab.connects(lab.path_a, lab.ip_b, 8002)
    finally:
        recover(order)
    assert lab.connects(lab.path_a, lab.ip_b, 8002)
    with pytest.raises(Refused, match="no container"):
        resolve(Target(kind="container", container_id="nope", runtime="docker"))
    kill = FaultOrder(fault_id(), "PodChaos", "container-kill", {"containerNames": ["web"]}, target)
    print(inject(kill))
    assert main.wait(5) == -9
    recover(kill)


@needs_root
def test_cri_container_resolves_to_its_pid(lab: Lab, cri: dict[str, int]) -> None:
    main = lab.spawn(["sleep", "60"], netns=lab.path_a)
    cri[CID] = main.pid
    found = resolve(Target(kind="container", container_id=CID))
    assert found.pid == main.pid
    assert os.stat(found.netns).st_ino == os.stat(lab.path_a).st_ino
    with pytest.raises(Refused, match="no container"):
        resolve(Target(kind="container", container_id="absent", runtime="containerd"))
    with pytest.raises(Refused):
        resolve(Target(kind="container", container_id=CID, runtime="rkt"))
