"""The Kubernetes driver: finds pods with Chaos Mesh's selector semantics and puts faults on them,
through the official `kubernetes` client against the environment's API server.

    driver = KubernetesDriver(KubeConnection(api_url, token, ca_cert_pem), agent_for_node=lookup)
    targets = driver.candidates(selector, "shop", fault)   # then injector.selection.select(targets, mode, seed)
    driver.inject(targets[0], fault, fault_id, expires_at); ...; driver.recover(targets[0], fault, fault_id)

How each fault is done:
- PodChaos pod-kill: the pod is deleted with `gracePeriod` as gracePeriodSeconds and the uid of the
  pod that was selected as a precondition (a pod recreated under the same name since is left alone).
  One-shot: recovery does nothing; the pod's controller brings it back.
- PodChaos pod-failure: the images of every container (or of `containerNames`) are patched to a pause
  image, and the originals kept on the pod in the annotation `chaosplane.io/original-images` as JSON
  {fault id: {container: image}}, so two faults on one pod do not clobber each other: the second
  records the first's originals, and a container goes back to its image only when no fault holds it
  any more. Recovery restores the images and drops the fault's entry (the annotation with the last
  one); it is idempotent, and a pod that no longer exists is already recovered. Patches carry the
  pod's resourceVersion, so a concurrent change is a 409 and the step is redone on the fresh pod.
- PodChaos container-kill and every in-pod fault (NetworkChaos, StressChaos, IOChaos, DNSChaos,
  HTTPChaos, TimeChaos, JVMChaos, KernelChaos, BlockChaos) go to the node agent on the pod's node
  (`agent_for_node(node name)`), aimed at a container by its runtime id (`containerd://<id>` from the
  pod's status becomes AgentTarget(kind="container", container_id="<id>", runtime="containerd")).
  Which containers: `containerNames` where the action has it and it is given, otherwise the pod's
  first container (Chaos Mesh's ContainerSelector; the pod-level kinds share the pod's network
  namespace, so any container reaches it). Each container is one agent fault with the id
  `agent_fault_id(fault_id, container id)`, so one fault id may cover several pods on a node.

Selection (`candidates`), as Chaos Mesh's pod selector, except where noted:
- `pods` (namespace -> names) selects exactly those pods that exist; any other field given still
  narrows them (Chaos Mesh ignores the other fields then; a selector that reads narrower must never
  select more);
- `namespaces`: each is listed; when empty and there is no `pods`, the experiment's namespace;
- `labelSelectors` and `expressionSelectors` are sent to the API server as one label selector
  (`k=v`, `k in (..)`, `k notin (..)`, `k`, `!k`), `fieldSelectors` as the field selector;
- `annotationSelectors` (every one equal), `podPhaseSelectors` (any of them) are checked here;
- `nodes` and `nodeSelectors` (node labels -> node names) combine into one set of nodes, and a pod
  must run on one of them. When both match no node nothing is selected (Chaos Mesh then selects
  every pod: a fault must not land everywhere because a node label was misspelt);
- with `containerNames`, a pod that has none of those containers is no candidate;
- the result is sorted by namespace and name, so a recorded seed picks the same pods again.

Errors: 5xx, 429, timeouts and refused connections are TransientError; other 4xx are PermanentError
with the API server's message (401: authentication); a 404 at recovery means recovered.
Protected namespaces and other blast-radius rules are the policy's job, not this driver's.
No Django here.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from injector.drivers import agent as agent_api
from injector.drivers.base import DriverError, PermanentError, TargetRef, TransientError
from injector.faults import FaultSpec, SelectorKind

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
ORIGINAL_IMAGES = "chaosplane.io/original-images"
RUNTIMES = ("containerd", "cri-o", "docker")
CONFLICT_RETRIES = 5
AGENT_KINDS = frozenset({
    "NetworkChaos", "StressChaos", "IOChaos", "DNSChaos", "HTTPChaos", "TimeChaos", "JVMChaos", "KernelChaos",
    "BlockChaos",
})


@dataclass(frozen=True)
class KubeConnection:
    """How to reach one cluster's API server (from a Kubernetes environment's decrypted credentials)."""

    api_url: str
    token: str = field(repr=False)
    ca_cert_pem: str | None = field(default=None, repr=False)
    verify: bool = True
    timeout: float = 10.0  # seconds for each API request


def agent_fault_id(fault_id: str, container_id: str) -> str:
    """The id of the agent-side fault for one container (what the agent journals and recovers)."""
    return f"{fault_id}:{container_id[:16]}"


def split_container_id(value: str) -> tuple[str, str]:
    """`containerd://abc` -> ("containerd", "abc")."""
    runtime, sep, cid = value.partition("://")
    if not sep or not cid:
        raise PermanentError(f"container id {value!r} does not name its runtime (expected runtime://id)")
    if runtime not in RUNTIMES:
        raise PermanentError(f"container runtime {runtime!r} is not supported (one of: {', '.join(RUNTIMES)})")
    return runtime, cid


def label_selector(labels: dict[str, str] | None, expressions: Iterable[dict[str, Any]] | None = None) -> str:
    """matchLabels + matchExpressions as the API server's label selector string."""
    parts = [f"{k}={v}" for k, v in sorted((labels or {}).items())]
    for e in expressions or ():
        key, op, values = e["key"], e["operator"], list(e.get("values") or ())
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise PermanentError(f"expressionSelectors: unknown operator {op!r}")
    return ",".join(parts)


def field_selector(fields: dict[str, str] | None) -> str:
    def escape(value: str) -> str:  # k8s.io/apimachinery/pkg/fields.EscapeValue
        return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")

    return ",".join(f"{k}={escape(str(v))}" for k, v in sorted((fields or {}).items()))


def _api_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except (TypeError, ValueError):
        pass
    return str(error.reason or "no message")


def translate(error: Exception, what: str) -> DriverError:
    """An exception from the client as the driver's error, worded for the user."""
    if isinstance(error, DriverError):
        return error
    if isinstance(error, AttributeError) and isinstance(error.__context__, ApiException):
        # The client (36.0.3) fails decoding the empty body of its own TLS-failure exception.
        error = error.__context__
    if isinstance(error, ApiException):
        status = error.status or 0
        if status == 0:  # the client's wrapping of a TLS failure
            return PermanentError(f"{what}: TLS with the API server failed: {error.reason}")
        message = _api_message(error)
        if status == 401:
            return PermanentError(f"{what}: authentication failed (401): the API server refused the credentials "
                                  f"({message})")
        if status == 429 or status >= 500:
            return TransientError(f"{what}: the API server answered {status}: {message}")
        return PermanentError(f"{what}: the API server answered {status}: {message}")
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # (urllib3 makes it a timeout subclass)
        return TransientError(f"{what}: the API server could not be reached: {error}")
    if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError):
        return TransientError(f"{what}: the API server did not answer in time: {error}")
    if isinstance(error, urllib3.exceptions.HTTPError | OSError):
        return TransientError(f"{what}: the API server could not be reached: {error}")
    return PermanentError(f"{what}: {error}")


class KubernetesDriver:
    """The Driver protocol (injector.drivers.base) for pods of one cluster."""

    def __init__(
        self,
        connection: KubeConnection,
        agent_for_node: Callable[[str], Any] | None = None,
        *,
        pause_image: str = PAUSE_IMAGE,
        send_to_agent: Callable[..., agent_api.AgentResult] = agent_api.inject,
        recover_on_agent: Callable[..., agent_api.AgentResult] = agent_api.recover,
        agent_timeout: float = agent_api.DEFAULT_TIMEOUT,
    ) -> None:
        self.connection = connection
        self.agent_for_node = agent_for_node
        self.pause_image = pause_image
        self.send_to_agent = send_to_agent
        self.recover_on_agent = recover_on_agent
        self.agent_timeout = agent_timeout
        self._ca_file: str | None = None
        self._client: k8s.ApiClient | None = None
        self._core: k8s.CoreV1Api | None = None

    # -- connection

    @property
    def core(self) -> k8s.CoreV1Api:
        if self._core is None:
            conn = self.connection
            config = k8s.Configuration(
                host=conn.api_url.rstrip("/"),
                # 'BearerToken' since client 36, 'authorization' before it: the header's whole value.
                api_key={"BearerToken": f"Bearer {conn.token}", "authorization": f"Bearer {conn.token}"},
            )
            config.verify_ssl = conn.verify
            config.retries = False  # the lifecycle retries transient errors with backoff; fail fast here
            if conn.ca_cert_pem:
                handle, self._ca_file = tempfile.mkstemp(prefix="chaosplane-ca-", suffix=".pem")
                with os.fdopen(handle, "w") as out:
                    out.write(conn.ca_cert_pem)
                config.ssl_ca_cert = self._ca_file
            self._client = k8s.ApiClient(config)
            self._core = k8s.CoreV1Api(self._client)
        return self._core

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._core = None
        if self._ca_file:
            try:
                os.unlink(self._ca_file)
            except FileNotFoundError:
                pass
            self._ca_file = None

    def __enter__(self) -> KubernetesDriver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=self.connection.timeout, **kwargs)
        except Exception as error:  # noqa: BLE001 - every failure becomes a transient or permanent one
            raise translate(error, what) from error

    # -- selection

    def candidates(self, selector: dict[str, Any] | None, namespace: str, fault: FaultSpec) -> list[TargetRef]:
        sel = selector or {}
        if fault.kind.selector != SelectorKind.PODS:
            raise PermanentError(f"{fault.kind.name} does not select pods")
        by_name: dict[str, list[str]] = {ns: list(names) for ns, names in (sel.get("pods") or {}).items()}
        namespaces = list(sel.get("namespaces") or ())
        if by_name:
            scope = [ns for ns in by_name if not namespaces or ns in namespaces]
        else:
            scope = namespaces or ([namespace] if namespace else [])
            if not scope:
                raise PermanentError("the selector names no namespace and the experiment has none")
        labels = label_selector(sel.get("labelSelectors"), sel.get("expressionSelectors"))
        fields = field_selector(sel.get("fieldSelectors"))
        query = {k: v for k, v in (("label_selector", labels), ("field_selector", fields)) if v}

        node_names: set[str] | None = None
        if sel.get("nodes") or sel.get("nodeSelectors"):
            node_names = set(sel.get("nodes") or ())
            if sel.get("nodeSelectors"):
                wanted_nodes = label_selector(sel["nodeSelectors"])
                nodes = self._call("list nodes", self.core.list_node, label_selector=wanted_nodes)
                node_names |= {n.metadata.name for n in nodes.items or ()}
        annotations = dict(sel.get("annotationSelectors") or {})
        phases = set(sel.get("podPhaseSelectors") or ())
        wanted_containers = _container_names(fault)

        found: dict[str, TargetRef] = {}
        for ns in scope:
            listed = self._call(f"list pods in {ns}", self.core.list_namespaced_pod, ns, **query)
            names = set(by_name[ns]) if by_name else None
            for pod in listed.items or ():
                meta, spec, status = pod.metadata, pod.spec, pod.status
                if names is not None and meta.name not in names:
                    continue
                pod_annotations = meta.annotations or {}
                if any(pod_annotations.get(k) != v for k, v in annotations.items()):
                    continue
                if phases and (status.phase if status else None) not in phases:
                    continue
                if node_names is not None and (spec.node_name if spec else None) not in node_names:
                    continue
                if wanted_containers and not {c.name for c in spec.containers} & set(wanted_containers):
                    continue
                ref = _target(pod)
                found[ref.key] = ref
        return [found[k] for k in sorted(found, key=lambda k: (found[k].namespace, found[k].data["name"]))]

    # -- faults

    def inject(self, target: TargetRef, fault: FaultSpec, fault_id: str, expires_at: float | datetime) -> str:
        kind, action = fault.kind.name, fault.action.name
        if kind == "PodChaos" and action == "pod-kill":
            return self._kill(target, fault)
        if kind == "PodChaos" and action == "pod-failure":
            return self._fail(target, fault, fault_id)
        if (kind == "PodChaos" and action == "container-kill") or kind in AGENT_KINDS:
            return self._agent_inject(target, fault, fault_id, expires_at)
        raise PermanentError(f"{kind} {action} is not a pod fault; the Kubernetes driver cannot apply it")

    def recover(self, target: TargetRef, fault: FaultSpec, fault_id: str) -> None:
        kind, action = fault.kind.name, fault.action.name
        if fault.action.one_shot:
            return  # pod-kill, container-kill: done once, nothing to undo
        if kind == "PodChaos" and action == "pod-failure":
            self._restore(target, fault_id)
        elif kind in AGENT_KINDS:
            self._agent_recover(target, fault, fault_id)

    # -- pod-kill

    def _kill(self, target: TargetRef, fault: FaultSpec) -> str:
        ns, name = target.namespace, target.data["name"]
        grace = int(fault.get("gracePeriod") or 0)
        uid = target.data.get("uid")
        body = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=uid)) if uid else None
        self._call(f"delete pod {ns}/{name}", self.core.delete_namespaced_pod, name, ns,
                   grace_period_seconds=grace, body=body)
        return f"deleted pod {ns}/{name} (grace period {grace} s)"

    # -- pod-failure

    def _read(self, ns: str, name: str, missing_ok: bool) -> Any:
        try:
            return self.core.read_namespaced_pod(name, ns, _request_timeout=self.connection.timeout)
        except ApiException as error:
            if error.status == 404 and missing_ok:
                return None
            raise translate(error, f"read pod {ns}/{name}") from error
        except Exception as error:  # noqa: BLE001
            raise translate(error, f"read pod {ns}/{name}") from error

    def _patch(self, ns: str, name: str, body: dict[str, Any], missing_ok: bool) -> bool:
        """True when applied; False on a conflict (redo) or, with missing_ok, a pod that is gone."""
        try:
            self.core.patch_namespaced_pod(name, ns, body, _request_timeout=self.connection.timeout,
                                           _content_type="application/strategic-merge-patch+json")
            return True
        except ApiException as error:
            if error.status == 409 or (error.status == 404 and missing_ok):
                return False
            raise translate(error, f"patch pod {ns}/{name}") from error
        except Exception as error:  # noqa: BLE001
            raise translate(error, f"patch pod {ns}/{name}") from error

    def _fail(self, target: TargetRef, fault: FaultSpec, fault_id: str) -> str:
        ns, name = target.namespace, target.data["name"]
        wanted = fault.get("containerNames") or None
        for _ in range(CONFLICT_RETRIES):
            pod = self._read(ns, name, missing_ok=False)
            if target.data.get("uid") and pod.metadata.uid != target.data["uid"]:
                raise PermanentError(f"pod {ns}/{name} was replaced by another pod of that name since it was selected")
            records = _records(pod, ns, name)
            if fault_id in records:
                return f"pod {ns}/{name} already failing for this fault"
            images = {c.name: c.image for c in pod.spec.containers}
            names = [c for c in images if wanted is None or c in wanted]
            if not names:
                raise PermanentError(f"pod {ns}/{name} has none of the containers {', '.join(wanted or ())}")
            held: dict[str, str] = {}
            for other in records.values():
                for container, image in other.items():
                    held.setdefault(container, image)  # the true original, kept by an earlier fault
            records[fault_id] = {c: held.get(c, images[c]) for c in names}
            body = {
                "metadata": {
                    "resourceVersion": pod.metadata.resource_version,
                    "annotations": {ORIGINAL_IMAGES: json.dumps(records, sort_keys=True)},
                },
                "spec": {"containers": [{"name": c, "image": self.pause_image} for c in names]},
            }
            if self._patch(ns, name, body, missing_ok=False):
                return f"pod {ns}/{name}: containers {', '.join(names)} now run {self.pause_image}"
        raise TransientError(f"pod {ns}/{name} kept changing while its images were being replaced; try again")

    def _restore(self, target: TargetRef, fault_id: str) -> None:
        ns, name = target.namespace, target.data["name"]
        for _ in range(CONFLICT_RETRIES):
            pod = self._read(ns, name, missing_ok=True)
            if pod is None:
                return  # gone: nothing left to restore
            records = _records(pod, ns, name)
            mine = records.pop(fault_id, None)
            if mine is None:
                return  # never injected here, or already recovered
            still_held = {c for other in records.values() for c in other}
            present = {c.name for c in pod.spec.containers}
            restore = [{"name": c, "image": image} for c, image in mine.items() if c in present and c not in still_held]
            body: dict[str, Any] = {
                "metadata": {
                    "resourceVersion": pod.metadata.resource_version,
                    "annotations": {ORIGINAL_IMAGES: json.dumps(records, sort_keys=True) if records else None},
                },
            }
            if restore:
                body["spec"] = {"containers": restore}
            if self._patch(ns, name, body, missing_ok=True):
                return
        raise TransientError(f"pod {ns}/{name} kept changing while its images were being restored; try again")

    # -- through the node agent

    def _agent(self, target: TargetRef) -> tuple[str, Any]:
        node = target.data.get("nodeName")
        where = f"pod {target.namespace}/{target.data['name']}"
        if not node:
            raise PermanentError(f"{where} is not scheduled on a node")
        if self.agent_for_node is None:
            raise PermanentError(f"{where}: no node agents are known for this cluster")
        agent = self.agent_for_node(node)
        if agent is None:
            raise PermanentError(f"{where}: no node agent runs on node {node}")
        return node, agent

    def _agent_containers(self, target: TargetRef, fault: FaultSpec) -> list[tuple[str, str, str]]:
        """(container name, id without the runtime, runtime) of each container the fault lands on."""
        where = f"pod {target.namespace}/{target.data['name']}"
        order: list[str] = list(target.data.get("containerNames") or ())
        ids: dict[str, str] = dict(target.data.get("containers") or {})
        wanted = _container_names(fault)
        names = [c for c in order if c in wanted] if wanted else order[:1]
        if not names:
            raise PermanentError(f"{where} has none of the containers {', '.join(wanted or ())}")
        out = []
        for name in names:
            if not ids.get(name):
                raise PermanentError(f"{where}: container {name} has not started (no container id yet)")
            runtime, cid = split_container_id(ids[name])
            out.append((name, cid, runtime))
        return out

    def _agent_inject(self, target: TargetRef, fault: FaultSpec, fault_id: str, expires_at: float | datetime) -> str:
        node, agent = self._agent(target)
        containers = self._agent_containers(target, fault)
        where = f"pod {target.namespace}/{target.data['name']}"
        params = fault.dump()
        done: list[tuple[str, str]] = []
        details = []
        for name, cid, runtime in containers:
            fid = agent_fault_id(fault_id, cid)
            try:
                result = self._agent_call(
                    f"{where} container {name} on node {node}", self.send_to_agent, agent, fid,
                    fault.kind.name, fault.action.name, params,
                    agent_api.AgentTarget(kind="container", container_id=cid, runtime=runtime), expires_at,
                )
                if not result.ok:
                    raise PermanentError(f"the agent on node {node} refused {fault.kind.name} {fault.action.name} "
                                         f"on {where} container {name}: {result.error or 'no reason given'}")
            except DriverError:
                if not fault.action.one_shot:
                    for _, undo in done:  # best effort: leave nothing half applied
                        try:
                            self._agent_call("undo", self.recover_on_agent, agent, undo)
                        except DriverError:
                            pass
                raise
            done.append((name, fid))
            details.append(f"{name}: {result.detail}" if result.detail else name)
        return f"{fault.kind.name} {fault.action.name} on {where} (node {node}): {'; '.join(details)}"

    def _agent_recover(self, target: TargetRef, fault: FaultSpec, fault_id: str) -> None:
        if not target.data.get("nodeName"):
            return  # never scheduled, so never injected
        node, agent = self._agent(target)
        where = f"pod {target.namespace}/{target.data['name']}"
        try:
            containers = self._agent_containers(target, fault)
        except PermanentError:
            return  # no container could have received it
        for name, cid, _ in containers:
            result = self._agent_call(f"{where} container {name} on node {node}", self.recover_on_agent, agent,
                                      agent_fault_id(fault_id, cid))
            if not result.ok:
                raise PermanentError(f"the agent on node {node} could not recover {where} container {name}: "
                                     f"{result.error or 'no reason given'}")

    def _agent_call(self, what: str, method: Callable[..., agent_api.AgentResult], *args: Any) -> agent_api.AgentResult:
        return agent_api.call(what, method, *args, timeout=self.agent_timeout)


def _container_names(fault: FaultSpec) -> list[str] | None:
    """The containers the fault names, where its action takes `containerNames` (not pod-kill)."""
    if fault.kind.name == "PodChaos" and fault.action.name == "pod-kill":
        return None
    if "containerNames" not in fault.kind.params_type(fault.action).by_name:
        return None
    return list(fault.get("containerNames") or ()) or None


def _records(pod: Any, ns: str, name: str) -> dict[str, dict[str, str]]:
    raw = (pod.metadata.annotations or {}).get(ORIGINAL_IMAGES)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise PermanentError(f"pod {ns}/{name}: the annotation {ORIGINAL_IMAGES} is not JSON") from None
    if not isinstance(data, dict):
        raise PermanentError(f"pod {ns}/{name}: the annotation {ORIGINAL_IMAGES} is not a JSON object")
    return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}


def _target(pod: Any) -> TargetRef:
    meta, spec, status = pod.metadata, pod.spec, pod.status
    ids = {s.name: s.container_id or "" for s in (status.container_statuses or ())} if status else {}
    order = [c.name for c in spec.containers or ()]
    node = spec.node_name or ""
    return TargetRef(
        key=f"pod/{meta.namespace}/{meta.name}",
        display=f"{meta.namespace}/{meta.name} on {node}" if node else f"{meta.namespace}/{meta.name} (unscheduled)",
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        namespace=meta.namespace,
        data={
            "name": meta.name,
            "uid": meta.uid,
            "nodeName": node,
            "phase": status.phase if status else "",
            "containerNames": order,  # spec order (a JSON object's key order is not kept by every store)
            "containers": {c: ids.get(c, "") for c in order},
        },
    )
