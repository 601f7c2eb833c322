"""A local emulator of the Kubernetes API server, because a real one cannot run here (no cluster, no
network). It is a real HTTP server on 127.0.0.1 speaking the REST API the official `kubernetes`
client uses, so tests point an unpatched `kubernetes.client.Configuration(host=server.url)` with a
bearer token at it. It covers what Chaosplane's driver needs, with the API server's semantics:

- bearer-token authentication (401 otherwise);
- namespaces and nodes: list (labelSelector, fieldSelector metadata.name) and get;
- pods: list across namespaces and per namespace with `labelSelector` (equality and set-based:
  `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`) and `fieldSelector`
  (metadata.name, metadata.namespace, spec.nodeName, status.phase, ...; `=`, `==`, `!=`) evaluated
  here, server side; get; delete (gracePeriodSeconds from the query or the DeleteOptions body,
  uid/resourceVersion preconditions), recorded in `deleted`; patch as strategic merge (containers
  merged by name, null deletes), JSON merge (RFC 7386) or JSON patch (RFC 6902), with the API's pod
  update rule (only images, labels and annotations may change: 422 otherwise) and optimistic
  concurrency (a patch carrying metadata.resourceVersion that is stale gets 409);
- HTTPS when given a certificate and key (`tls=`), so a connection's CA certificate is exercised;
- a changed image restarts that container like the kubelet would: a new containerID, restartCount+1.

State is plain dicts in memory (the JSON the API would serve), readable by the test through `pod()`,
`pods`, `deleted` and `requests`; `fail()` queues error answers (or a stall, for timeouts).

    with KubeAPI(token="t") as api:
        api.add_node("node-1", labels={"zone": "a"})
        api.add_pod("shop", "cart-1", labels={"app": "cart"}, node="node-1")
        config = kubernetes.client.Configuration(host=api.url) ...
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LABEL_KEY = re.compile(r"^([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?/)?[a-zA-Z0-9]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$")
LABEL_VALUE = re.compile(r"^(([a-zA-Z0-9]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)?)$")
SET_REQUIREMENT = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
EQ_REQUIREMENT = re.compile(r"^\s*([^\s!=]+)\s*(==|!=|=)\s*(\S*)\s*$")

POD_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda p: p["metadata"]["name"],
    "metadata.namespace": lambda p: p["metadata"].get("namespace", ""),
    "spec.nodeName": lambda p: p["spec"].get("nodeName") or "",
    "spec.restartPolicy": lambda p: p["spec"].get("restartPolicy", ""),
    "spec.schedulerName": lambda p: p["spec"].get("schedulerName", ""),
    "spec.serviceAccountName": lambda p: p["spec"].get("serviceAccountName", ""),
    "status.phase": lambda p: p["status"].get("phase", ""),
    "status.podIP": lambda p: p["status"].get("podIP", ""),
}
NAME_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {"metadata.name": lambda o: o["metadata"]["name"]}
MERGE_BY_NAME = ("containers", "initContainers", "ephemeralContainers")
PATCH_TYPES = (
    "application/strategic-merge-patch+json",
    "application/merge-patch+json",
    "application/json-patch+json",
)


class ApiError(Exception):
    """An answer other than 2xx, as a Kubernetes Status object."""

    REASONS = {
        400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
        409: "Conflict", 415: "UnsupportedMediaType", 422: "Invalid", 500: "InternalError",
        503: "ServiceUnavailable",
    }

    def __init__(self, code: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or self.REASONS.get(code, "Unknown")

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }


# -- selectors ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in, notin, exists, !, =, !=
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # != and notin match objects without the key


def _split_outside_parens(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ApiError(400, f"unable to parse requirement: unbalanced ')' in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise ApiError(400, f"unable to parse requirement: unbalanced '(' in {text!r}")
    parts.append("".join(current))
    return parts


def _check_key(key: str) -> str:
    if not LABEL_KEY.match(key) or len(key) > 317:
        raise ApiError(400, f"unable to parse requirement: invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if not LABEL_VALUE.match(value) or len(value) > 63:
        raise ApiError(400, f"unable to parse requirement: invalid label value {value!r}")
    return value


def parse_label_selector(text: str) -> list[Requirement]:
    """The API server's label selector grammar (k8s.io/apimachinery/pkg/labels.Parse)."""
    text = text.strip()
    if not text:
        return []
    out = []
    for part in _split_outside_parens(text):
        part = part.strip()
        if not part:
            raise ApiError(400, f"unable to parse requirement: empty requirement in {text!r}")
        if m := SET_REQUIREMENT.match(part):
            values = [_check_value(v.strip()) for v in m.group(3).split(",")]
            if m.group(2) == "in" and values == [""]:
                raise ApiError(400, f"unable to parse requirement: {part!r}: for 'in', 'notin' operators, values set "
                               "can't be empty")
            out.append(Requirement(_check_key(m.group(1)), m.group(2), frozenset(values)))
        elif m := EQ_REQUIREMENT.match(part):
            op = "!=" if m.group(2) == "!=" else "="
            out.append(Requirement(_check_key(m.group(1)), op, frozenset({_check_value(m.group(3))})))
        elif part.startswith("!"):
            out.append(Requirement(_check_key(part[1:].strip()), "!"))
        else:
            out.append(Requirement(_check_key(part), "exists"))
    return out


def parse_field_selector(
    text: str, fields: dict[str, Callable[[dict[str, Any]], str]]
) -> list[tuple[Callable[[dict[str, Any]], str], bool, str]]:
    """`field=value`, `field==value`, `field!=value`, comma-separated; unknown fields are a 400."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise ApiError(400, f"invalid selector: {text!r}; can't understand {part!r}")
        name, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if name not in fields:
            raise ApiError(400, f"field label not supported: {name}")
        out.append((fields[name], op != "!=", value))
    return out


# -- patches --------------------------------------------------------------------------------------------------


def strategic_merge(target: Any, patch: Any, key: str = "") -> Any:
    """Strategic merge as the API does it for the parts of a pod that matter here: maps merge
    recursively, null deletes a key, lists of containers merge by name, other lists are replaced."""
    if isinstance(patch, dict) and isinstance(target, dict):
        out = dict(target)
        for k, v in patch.items():
            if k.startswith("$"):
                continue  # directives ($patch, $setElementOrder, ...): not needed here
            if v is None:
                out.pop(k, None)
            else:
                out[k] = strategic_merge(out.get(k), v, k)
        return out
    if isinstance(patch, list) and key in MERGE_BY_NAME and isinstance(target, list):
        out = [dict(item) for item in target]
        by_name = {item.get("name"): i for i, item in enumerate(out)}
        for item in patch:
            if not isinstance(item, dict) or "name" not in item:
                raise ApiError(400, f"{key}: every element of a merge list needs its merge key 'name'")
            if item.get("$patch") == "delete":
                out = [c for c in out if c.get("name") != item["name"]]
                by_name = {c.get("name"): i for i, c in enumerate(out)}
            elif item["name"] in by_name:
                index = by_name[item["name"]]
                out[index] = strategic_merge(out[index], item)
            else:
                out.append(strategic_merge({}, item))
                by_name[item["name"]] = len(out) - 1
        return out
    return copy.deepcopy(patch)


def json_merge(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = json_merge(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(400, f"json patch: invalid pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902: add, remove, replace, test (what a client uses for images and annotations)."""
    if not isinstance(ops, list):
        raise ApiError(400, "json patch: the body must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, f"json patch: invalid operation {op!r}")
        parts = _pointer(op["path"])
        if not parts:
            raise ApiError(400, "json patch: the root cannot be patched here")
        parent = doc
        for p in parts[:-1]:
            try:
                parent = parent[int(p)] if isinstance(parent, list) else parent[p]
            except (KeyError, IndexError, ValueError):
                raise ApiError(422, f"json patch: path {op['path']!r} does not exist") from None
        last = parts[-1]
        kind = op["op"]
        try:
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                elif kind == "remove":
                    parent.pop(index)
                elif kind == "replace":
                    parent[index] = op["value"]
                elif kind == "test":
                    if parent[index] != op["value"]:
                        raise ApiError(422, f"json patch: test failed at {op['path']!r}")
                else:
                    raise ApiError(400, f"json patch: unsupported op {kind!r}")
            else:
                if kind == "add":
                    parent[last] = op["value"]
                elif kind == "remove":
                    del parent[last]
                elif kind == "replace":
                    if last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
                elif kind == "test":
                    if parent.get(last) != op["value"]:
                        raise ApiError(422, f"json patch: test failed at {op['path']!r}")
                else:
                    raise ApiError(400, f"json patch: unsupported op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, f"json patch: path {op['path']!r} does not exist") from None
    return doc


# -- the server -----------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str = ""
    body: Any = None


@dataclass
class FailRule:
    status: int | None  # None: stall for `delay` seconds, then answer normally
    message: str
    method: str | None
    path: str | None
    times: int
    delay: float = 0.0

    def applies(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


@dataclass
class KubeAPI:
    """The emulator; use as a context manager (or start()/stop())."""

    token: str = "chaosplane-test-token"
    tls: tuple[str, str] | None = None  # (certificate chain, key) PEM paths: serve HTTPS
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._rules: list[FailRule] = []
        self._version = 1000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle

    def start(self) -> KubeAPI:
        api = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with api.lock:
                    api._connections.add(request)
                super().process_request(request, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up (a timeout test)
                    super().handle_error(request, client_address)

            def shutdown_request(self, request: Any) -> None:
                with api.lock:
                    api._connections.discard(request)
                super().shutdown_request(request)

        self._server = Server(("127.0.0.1", 0), _handler_for(self))
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="kubeapi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self.lock:  # kept-alive connections would otherwise go on being served
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._connections.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> KubeAPI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- state for tests

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def add_namespace(self, name: str, labels: dict[str, str] | None = None,
                      annotations: dict[str, str] | None = None) -> dict[str, Any]:
        with self.lock:
            meta: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_version(),
                                    "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}
            if annotations:
                meta["annotations"] = dict(annotations)
            obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta, "status": {"phase": "Active"}}
            self.namespaces[name] = obj
            return copy.deepcopy(obj)

    def add_node(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        with self.lock:
            obj = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_version(),
                             "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
            self.nodes[name] = obj
            return copy.deepcopy(obj)

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        node: str | None = "node-1",
        phase: str = "Running",
        containers: dict[str, str] | None = None,
        runtime: str = "containerd",
        owner: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """A pod as a controller and the kubelet would leave it; `containers` is name -> image."""
        containers = containers if containers is not None else {"app": "nginx:1.25"}
        with self.lock:
            if namespace not in self.namespaces:
                self.add_namespace(namespace)
            meta: dict[str, Any] = {
                "name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                "resourceVersion": self._next_version(), "creationTimestamp": "2025-01-01T00:00:00Z",
            }
            if labels:
                meta["labels"] = dict(labels)
            if annotations:
                meta["annotations"] = dict(annotations)
            if owner:
                meta["ownerReferences"] = [{
                    "apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": str(uuid.uuid4()),
                    "controller": True, "blockOwnerDeletion": True,
                }]
            spec: dict[str, Any] = {
                "containers": [{"name": c, "image": image} for c, image in containers.items()],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
            }
            if node:
                spec["nodeName"] = node
            running = phase == "Running"
            statuses = []
            for c, image in containers.items():
                status: dict[str, Any] = {"name": c, "image": image, "imageID": "", "ready": running,
                                          "restartCount": 0, "started": running}
                if running or phase in ("Succeeded", "Failed"):
                    status["containerID"] = f"{runtime}://{_container_id(namespace, name, c, 0)}"
                    status["state"] = ({"running": {"startedAt": "2025-01-01T00:00:01Z"}} if running
                                       else {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1}})
                else:
                    status["state"] = {"waiting": {"reason": "ContainerCreating"}}
                statuses.append(status)
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                   "status": {"phase": phase, "containerStatuses": statuses}}
            self.pods[(namespace, name)] = pod
            return copy.deepcopy(pod)

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            pod = self.pods.get((namespace, name))
            return copy.deepcopy(pod) if pod else None

    def remove_pod(self, namespace: str, name: str) -> None:
        with self.lock:
            self.pods.pop((namespace, name), None)

    def fail(self, status: int | None, message: str = "injected failure", *, method: str | None = None,
             path: str | None = None, times: int = 1, delay: float = 0.0) -> None:
        """The next `times` requests matching `method` and the `path` prefix get `status` with `message`
        (status None: they stall `delay` seconds first, then are answered normally)."""
        with self.lock:
            self._rules.append(FailRule(status, message, method, path, times, delay))

    def requests_to(self, method: str, path_prefix: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # -- request handling (called by the handler threads)

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                raise ApiError(400, "the request body is not JSON") from None
        with self.lock:
            self.requests.append(Recorded(method, path, query, content_type, parsed))
        if headers.get("Authorization") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized")
        delay = 0.0
        with self.lock:
            for rule in self._rules:
                if rule.times > 0 and rule.applies(method, path):
                    rule.times -= 1
                    if rule.status is None:
                        delay = rule.delay
                        break
                    raise ApiError(rule.status, rule.message)
            self._rules = [r for r in self._rules if r.times > 0]
        if delay:
            time.sleep(delay)
        segments = path.strip("/").split("/")
        if segments[:2] != ["api", "v1"]:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        rest = segments[2:]
        with self.lock:
            return self._route(method, rest, query, content_type, parsed)

    def _route(self, method: str, rest: list[str], query: dict[str, str], content_type: str,
               body: Any) -> tuple[int, dict[str, Any]]:
        if rest == ["namespaces"] and method == "GET":
            return 200, self._list("NamespaceList", self.namespaces.values(), query, NAME_FIELDS)
        if len(rest) == 2 and rest[0] == "namespaces" and method == "GET":
            return 200, copy.deepcopy(self._get(self.namespaces, rest[1], "namespaces", rest[1]))
        if rest == ["nodes"] and method == "GET":
            return 200, self._list("NodeList", self.nodes.values(), query, NAME_FIELDS)
        if len(rest) == 2 and rest[0] == "nodes" and method == "GET":
            return 200, copy.deepcopy(self._get(self.nodes, rest[1], "nodes", rest[1]))
        if rest == ["pods"] and method == "GET":
            return 200, self._list("PodList", self.pods.values(), query, POD_FIELDS)
        if len(rest) == 3 and rest[0] == "namespaces" and rest[2] == "pods" and method == "GET":
            items = [p for (ns, _), p in self.pods.items() if ns == rest[1]]
            return 200, self._list("PodList", items, query, POD_FIELDS)
        if len(rest) == 4 and rest[0] == "namespaces" and rest[2] == "pods":
            key = (rest[1], rest[3])
            pod = self._get(self.pods, key, "pods", rest[3])
            if method == "GET":
                return 200, copy.deepcopy(pod)
            if method == "DELETE":
                return 200, self._delete(key, pod, query, body)
            if method == "PATCH":
                return 200, self._patch(key, pod, content_type, body)
            raise ApiError(405, f"method {method} is not allowed on pods")
        raise ApiError(404, f"the server could not find the requested resource ({'/'.join(rest)})")

    def _get(self, table: dict[Any, dict[str, Any]], key: Any, resource: str, name: str) -> dict[str, Any]:
        obj = table.get(key)
        if obj is None:
            raise ApiError(404, f'{resource} "{name}" not found')
        return obj

    def _list(self, kind: str, objects: Any, query: dict[str, str],
              fields: dict[str, Callable[[dict[str, Any]], str]]) -> dict[str, Any]:
        labels = parse_label_selector(query.get("labelSelector", ""))
        field_rules = parse_field_selector(query.get("fieldSelector", ""), fields)
        items = []
        for obj in objects:
            obj_labels = obj["metadata"].get("labels") or {}
            if not all(r.matches(obj_labels) for r in labels):
                continue
            if not all((get(obj) == value) == equal for get, equal, value in field_rules):
                continue
            items.append(copy.deepcopy(obj))
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": str(self._version)}, "items": items}

    def _delete(self, key: tuple[str, str], pod: dict[str, Any], query: dict[str, str], body: Any) -> dict[str, Any]:
        options = body if isinstance(body, dict) else {}
        grace: Any = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        try:
            grace = int(grace)
        except (TypeError, ValueError):
            raise ApiError(400, f"gracePeriodSeconds: invalid value {grace!r}") from None
        if grace < 0:
            raise ApiError(422, "gracePeriodSeconds: must be greater than or equal to 0")
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != pod["metadata"]["uid"]:
            raise ApiError(409, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                           f"{pod['metadata']['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != pod["metadata"]["resourceVersion"]:
            raise ApiError(409, "Precondition failed: resourceVersion")
        del self.pods[key]
        self.deleted.append({"namespace": key[0], "name": key[1], "uid": pod["metadata"]["uid"],
                             "gracePeriodSeconds": grace})
        gone = copy.deepcopy(pod)
        gone["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:02Z"
        gone["metadata"]["deletionGracePeriodSeconds"] = grace
        return gone

    def _patch(self, key: tuple[str, str], pod: dict[str, Any], content_type: str, body: Any) -> dict[str, Any]:
        if content_type not in PATCH_TYPES:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                           f"{', '.join(PATCH_TYPES)}")
        if body is None:
            raise ApiError(400, "the patch is empty")
        if content_type == "application/json-patch+json":
            patched = json_patch(pod, body)
        elif not isinstance(body, dict):
            raise ApiError(400, "the patch must be a JSON object")
        else:
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != pod["metadata"]["resourceVersion"]:
                raise ApiError(409, f'Operation cannot be fulfilled on pods "{key[1]}": the object has been '
                               "modified; please apply your changes to the latest version and try again")
            merge = strategic_merge if content_type.startswith("application/strategic") else json_merge
            patched = merge(pod, body)
        _check_pod_update(pod, patched)
        patched["status"] = copy.deepcopy(pod["status"])  # the status subresource is not changed by a patch
        patched["metadata"]["resourceVersion"] = self._next_version()
        for key_ in ("labels", "annotations"):
            if patched["metadata"].get(key_) == {}:
                del patched["metadata"][key_]
        self._kubelet_sync(patched, pod)
        self.pods[key] = patched
        return copy.deepcopy(patched)

    def _kubelet_sync(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """A container whose image changed is restarted with the new image (new id, one more restart)."""
        before = {c["name"]: c.get("image") for c in old["spec"]["containers"]}
        for container in new["spec"]["containers"]:
            if before.get(container["name"]) == container.get("image"):
                continue
            for status in new["status"].get("containerStatuses", ()):
                if status["name"] == container["name"]:
                    status["image"] = container["image"]
                    status["restartCount"] = status.get("restartCount", 0) + 1
                    if "containerID" in status:
                        runtime = status["containerID"].split("://", 1)[0]
                        ns, name = new["metadata"]["namespace"], new["metadata"]["name"]
                        status["containerID"] = (
                            f"{runtime}://{_container_id(ns, name, container['name'], status['restartCount'])}"
                        )


def _check_pod_update(old: dict[str, Any], new: dict[str, Any]) -> None:
    """The API server's pod update validation: only images (and a few fields not used here) may change."""
    for k in ("name", "namespace", "uid"):
        if old["metadata"].get(k) != new.get("metadata", {}).get(k):
            raise ApiError(422, f"Pod \"{old['metadata']['name']}\" is invalid: metadata.{k}: Invalid value: "
                           "field is immutable")

    def without_images(spec: dict[str, Any]) -> dict[str, Any]:
        spec = copy.deepcopy(spec)
        spec.pop("activeDeadlineSeconds", None)
        for list_key in ("containers", "initContainers"):
            for c in spec.get(list_key) or ():
                if isinstance(c, dict):
                    c.pop("image", None)
        return spec

    if without_images(old["spec"]) != without_images(new.get("spec") or {}):
        raise ApiError(422, f"Pod \"{old['metadata']['name']}\" is invalid: spec: Forbidden: pod updates may not "
                       "change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, "
                       "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) "
                       "or `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
                       "negative)")
    for c in (new.get("spec") or {}).get("containers") or ():
        if not c.get("image"):
            raise ApiError(422, f"Pod \"{old['metadata']['name']}\" is invalid: spec.containers.image: Required value")
    annotations = new["metadata"].get("annotations") or {}
    if not all(isinstance(v, str) for v in annotations.values()):
        raise ApiError(400, "metadata.annotations: values must be strings")


def _container_id(namespace: str, pod: str, container: str, restart: int) -> str:
    return hashlib.sha256(f"{namespace}/{pod}/{container}/{restart}".encode()).hexdigest()


def _handler_for(api: KubeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                code, payload = api.handle(self.command, self.path, self.headers, body)
            except ApiError as error:
                code, payload = error.code, error.status()
            except Exception as error:  # noqa: BLE001 - an emulator bug answers 500 instead of hanging
                code, payload = 500, ApiError(500, f"emulator error: {error!r}").status()
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_DELETE = do_PATCH = do_POST = do_PUT = _serve

    return Handler
