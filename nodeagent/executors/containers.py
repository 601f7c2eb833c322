"""A container id -> the PID of its main process, through the runtime that runs it.

- Docker: its HTTP API on the unix socket, `GET /containers/{id}/json` -> State.Pid.
- containerd and CRI-O: the CRI gRPC API, `runtime.v1.RuntimeService/ContainerStatus` with
  verbose=true; the runtime's verbose info (JSON under the key "info") carries "pid".

The two CRI messages are tiny, so they are encoded and decoded here by hand rather than by code
generated from the whole CRI proto (which would pull in the Kubernetes API's proto tree).
"""
from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import quote

from nodeagent.orders import Refused

#: Where each runtime listens; the agent's configuration (or a test) may point these elsewhere.
SOCKETS: dict[str, str] = {
    "docker": "/var/run/docker.sock",
    "containerd": "/run/containerd/containerd.sock",
    "cri-o": "/var/run/crio/crio.sock",
}
TIMEOUT = 5.0
CRI_METHOD = "/runtime.v1.RuntimeService/ContainerStatus"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(self._path)
        self.sock = sock


def docker_pid(container_id: str, path: str) -> int:
    conn = _UnixHTTPConnection(path)
    try:
        conn.request("GET", f"/containers/{quote(container_id, safe='')}/json")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status == 404:
        raise Refused(f"docker has no container {container_id}")
    if response.status != 200:
        raise Refused(f"docker answered {response.status} for container {container_id}")
    state = json.loads(body).get("State") or {}
    pid = state.get("Pid")
    if not state.get("Running") or not isinstance(pid, int) or pid <= 0:
        raise Refused(f"container {container_id} is not running")
    return pid


# CRI over gRPC ------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_status_request(container_id: str, verbose: bool = True) -> bytes:
    """ContainerStatusRequest{container_id = 1; verbose = 2}."""
    raw = container_id.encode()
    return b"\x0a" + _varint(len(raw)) + raw + (b"\x10\x01" if verbose else b"")


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of a protobuf message: varints as ints, length-delimited as bytes."""
    out, i = [], 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            byte = data[i]
            i += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, varint()))
        elif wire == 2:
            length = varint()
            out.append((number, data[i:i + length]))
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def decode_status_info(data: bytes) -> dict[str, str]:
    """The `info` map (field 2) of ContainerStatusResponse."""
    info = {}
    for number, value in _fields(data):
        if number == 2 and isinstance(value, bytes):
            entry = dict(_fields(value))
            info[bytes(entry.get(1, b"")).decode()] = bytes(entry.get(2, b"")).decode()
    return info


def cri_pid(container_id: str, path: str) -> int:
    import grpc

    with grpc.insecure_channel(f"unix://{path}") as channel:
        call = channel.unary_unary(CRI_METHOD, request_serializer=None, response_deserializer=None)
        try:
            answer = call(encode_status_request(container_id), timeout=TIMEOUT)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise Refused(f"the CRI runtime has no container {container_id}") from None
            raise Refused(f"the CRI runtime at {path} answered {error.code().name}") from None
    try:
        pid = json.loads(decode_status_info(answer).get("info", "{}")).get("pid")
    except (ValueError, AttributeError):
        pid = None
    if not isinstance(pid, int) or pid <= 0:
        raise Refused(f"the CRI runtime gave no pid for container {container_id} (is it running?)")
    return pid


def container_pid(container_id: str, runtime: str | None) -> int:
    """Asks the named runtime, or each whose socket exists, in the order docker, containerd, cri-o."""
    if runtime is not None and runtime not in SOCKETS:
        raise Refused(f"runtime {runtime!r} is not one of {', '.join(SOCKETS)}")
    names = [runtime] if runtime else list(SOCKETS)
    present = [n for n in names if os.path.exists(SOCKETS[n])]
    if not present:
        raise Refused(f"no container runtime socket found ({', '.join(SOCKETS[n] for n in names)})")
    refusals = []
    for name in present:
        try:
            return docker_pid(container_id, SOCKETS[name]) if name == "docker" else cri_pid(container_id,
                                                                                           SOCKETS[name])
        except Refused as refused:
            refusals.append(str(refused))
        except OSError as error:
            refusals.append(f"{name}: {error}")
    raise Refused("; ".join(refusals))
