"""A small Compute Engine emulator: real HTTP on 127.0.0.1, the REST paths google-cloud-compute's
REST transport calls for instances get/stop/start/reset/detachDisk/attachDisk and zone operations
get/wait. Every operation completes at once and is returned DONE.

    with FakeComputeEngine() as gce:
        gce.add_disk("my-project", "us-central1-a", "data-1")
        gce.add_instance("my-project", "us-central1-a", "web-1", disks=[("boot-1", True), ("data-1", False)])
        client = compute_v1.InstancesClient(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": gce.endpoint}
        )

The client takes an `http://` api_endpoint as it is (its REST transport only adds a scheme when the
endpoint has none), so no TLS is needed. `fail_with = 503` makes every request fail with that status
until it is set back to None; `calls` records (verb, instance) for what the API does not report
(a reset leaves no trace on the instance).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes import ServedFake

API = "https://www.googleapis.com/compute/v1"
_INSTANCE = re.compile(r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/instances/([^/]+)(?:/([A-Za-z]+))?$")
_OPERATION = re.compile(r"^/compute/v1/projects/([^/]+)/zones/([^/]+)/operations/([^/]+?)(/wait)?$")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "domain": "global", "reason": self.reason}
        return {"error": {"code": self.status, "message": self.message, "errors": [error]}}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class FakeComputeEngine(ServedFake):
    def __init__(self) -> None:
        self.instances: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.disks: dict[tuple[str, str, str], dict[str, Any]] = {}  # name -> {"users": [instance links]}
        self.operations: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_with: int | None = None
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- state --------------------------------------------------------------------------------

    def add_disk(self, project: str, zone: str, name: str) -> str:
        link = f"{API}/projects/{project}/zones/{zone}/disks/{name}"
        self.disks[(project, zone, name)] = {"selfLink": link, "users": []}
        return link

    def add_instance(
        self, project: str, zone: str, name: str, *, status: str = "RUNNING", disks: Sequence[tuple[str, bool]] = ()
    ) -> None:
        """`disks`: (disk name, boot) pairs, attached in order with the disk name as device name."""
        link = f"{API}/projects/{project}/zones/{zone}/instances/{name}"
        instance = {
            "kind": "compute#instance",
            "id": str(next(self._ids)),
            "name": name,
            "status": status,
            "zone": f"{API}/projects/{project}/zones/{zone}",
            "selfLink": link,
            "labels": {"team": "shop"},
            "disks": [],
        }
        self.instances[(project, zone, name)] = instance
        for disk, boot in disks:
            if (project, zone, disk) not in self.disks:
                self.add_disk(project, zone, disk)
            self._attach(
                project, zone, instance, {"source": self.disks[(project, zone, disk)]["selfLink"], "boot": boot}
            )

    # -- server -------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeComputeEngine:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                fake._serve(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler), "fake-gce")
        return self

    # -- HTTP ---------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, verb: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if self.fail_with is not None:
                raise ApiError(self.fail_with, "backendError", "Internal error. Please try again later.")
            body = json.loads(raw) if raw.strip() else {}
            with self._lock:
                status, out = 200, self._route(verb, url.path, query, body)
        except ApiError as exc:
            status, out = exc.status, exc.body()
        except (ValueError, KeyError, TypeError) as exc:
            status, out = 400, ApiError(400, "invalid", f"Invalid request: {exc}").body()
        data = json.dumps(out).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, verb: str, path: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if m := _OPERATION.match(path):
            project, zone, name, wait = m.groups()
            if (verb, bool(wait)) not in (("GET", False), ("POST", True)):
                raise ApiError(405, "methodNotAllowed", f"{verb} {path} is not allowed")
            try:
                return self.operations[(project, zone, name)]
            except KeyError:
                raise ApiError(404, "notFound", f"The resource '{path[12:]}' was not found") from None
        m = _INSTANCE.match(path)
        if not m:
            raise ApiError(404, "notFound", f"No such API path: {path}")
        project, zone, name, method = m.groups()
        instance = self.instances.get((project, zone, name))
        if instance is None:
            raise ApiError(
                404, "notFound", f"The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found"
            )
        if verb == "GET" and method is None:
            return instance
        if verb != "POST" or method is None:
            raise ApiError(405, "methodNotAllowed", f"{verb} {path} is not allowed")
        self.calls.append((method, name))
        if method == "stop":
            if instance["status"] != "TERMINATED":
                instance["status"] = "TERMINATED"
                instance["lastStopTimestamp"] = _now()
        elif method == "start":
            if instance["status"] != "RUNNING":
                instance["status"] = "RUNNING"
                instance["lastStartTimestamp"] = _now()
        elif method == "reset":
            if instance["status"] != "RUNNING":
                raise ApiError(400, "resourceNotReady", f"The resource '{instance['selfLink']}' is not ready")
        elif method == "detachDisk":
            device = query.get("deviceName", "")
            found = [d for d in instance["disks"] if d["deviceName"] == device]
            if not found:
                raise ApiError(400, "invalid", f"Invalid value for field 'deviceName': '{device}'. No such disk.")
            instance["disks"].remove(found[0])
            disk = self._disk(found[0]["source"])
            disk["users"].remove(instance["selfLink"])
        elif method == "attachDisk":
            self._attach(project, zone, instance, body)
        else:
            raise ApiError(400, "invalid", f"Unsupported method {method}")
        return self._operation(project, zone, method, instance["selfLink"])

    def _disk(self, source: str) -> dict[str, Any]:
        m = re.search(r"projects/([^/]+)/zones/([^/]+)/disks/([^/]+)$", source or "")
        disk = self.disks.get(m.groups()) if m else None
        if disk is None:
            raise ApiError(404, "notFound", f"The resource '{source}' was not found")
        return disk

    def _attach(self, project: str, zone: str, instance: dict[str, Any], spec: dict[str, Any]) -> None:
        disk = self._disk(spec.get("source", ""))
        if disk["users"]:
            raise ApiError(
                400, "resourceInUseByAnotherResource", f"The disk resource '{spec['source']}' is already being used"
            )
        device = spec.get("deviceName") or disk["selfLink"].rsplit("/", 1)[1]
        if any(d["deviceName"] == device for d in instance["disks"]):
            raise ApiError(400, "invalid", f"Invalid value for field 'deviceName': '{device}'. Already in use.")
        used = {d["index"] for d in instance["disks"]}
        instance["disks"].append(
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": spec.get("mode") or "READ_WRITE",
                "source": disk["selfLink"],
                "deviceName": device,
                "index": min(i for i in range(len(used) + 1) if i not in used),
                "boot": bool(spec.get("boot", False)),
                "autoDelete": bool(spec.get("autoDelete", False)),
                "interface": spec.get("interface") or "SCSI",
            }
        )
        disk["users"].append(instance["selfLink"])

    def _operation(self, project: str, zone: str, kind: str, target: str) -> dict[str, Any]:
        op_id = next(self._ids)
        name = f"operation-{op_id}"
        now = _now()
        op = {
            "kind": "compute#operation",
            "id": str(op_id),
            "name": name,
            "zone": f"{API}/projects/{project}/zones/{zone}",
            "operationType": kind,
            "targetLink": target,
            "status": "DONE",
            "progress": 100,
            "insertTime": now,
            "startTime": now,
            "endTime": now,
            "selfLink": f"{API}/projects/{project}/zones/{zone}/operations/{name}",
        }
        self.operations[(project, zone, name)] = op
        return op
