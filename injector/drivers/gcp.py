"""GCPChaos through the Compute Engine API (google-cloud-compute, REST): stop or reset an instance,
or detach disks from it.

    driver = GCPDriver(GCPConnection(project="my-project", zone="us-central1-a", service_account_info={...}))
    [target] = driver.candidates(None, "", fault)      # the instance the spec names
    driver.inject(target, fault, fault_id, expires_at)  # stop / reset / detach, waiting for the operation
    driver.recover(target, fault, fault_id)             # start / nothing / attach the same disks again

The spec's `project` and `zone` name where the instance is (the connection's are the defaults). For
disk-loss, `candidates` records each named disk as attached (source, mode, auto-delete, interface)
in TargetRef.data, and recovery attaches exactly that again under the same device name.

Operations are waited on through the zone operations API of the same endpoint (not the client's
ExtendedOperation, whose poller always talks to compute.googleapis.com). Key material is never
logged nor put in a message (the connection's repr hides it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.auth import exceptions as auth_exc
from google.cloud import compute_v1

from injector.faults import FaultSpec

from .base import PermanentError, TargetRef, TransientError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
RUNNING = frozenset({"PROVISIONING", "STAGING", "RUNNING"})


@dataclass(frozen=True)
class GCPConnection:
    project: str
    zone: str
    #: A service account key (the JSON file's contents); or give `credentials` (google.auth), e.g.
    #: AnonymousCredentials() against an emulator.
    service_account_info: dict[str, Any] | None = field(default=None, repr=False)
    credentials: Any = field(default=None, repr=False)
    api_endpoint: str | None = None  # e.g. "http://127.0.0.1:8085"; default: compute.googleapis.com
    timeout: float = 60.0  # one HTTP request, seconds
    retry_timeout: float = 30.0  # the client's own retries of 429/5xx per call; 0: none
    wait_timeout: float = 600.0  # how long to wait for an operation or a state
    poll_interval: float = 5.0


class GCPDriver:
    """The Driver protocol for GCPChaos: node-stop, node-reset (one-shot), disk-loss."""

    def __init__(self, connection: GCPConnection) -> None:
        self.conn = connection
        self._instances: compute_v1.InstancesClient | None = None
        self._operations: compute_v1.ZoneOperationsClient | None = None

    # -- the Driver protocol --------------------------------------------------------------------

    def candidates(self, selector: dict[str, Any] | None, namespace: str, fault: FaultSpec) -> list[TargetRef]:
        project, zone, name = self._where(fault, None)
        instance = self._get(project, zone, name)
        data: dict[str, Any] = {"project": project, "zone": zone, "instance": name}
        key = f"gcp/{project}/{zone}/{name}"
        display = f"{name} in {project}/{zone}"
        if fault.action.name == "disk-loss":
            attached = {d.device_name: d for d in instance.disks}
            missing = [n for n in fault.get("deviceNames") if n not in attached]
            if missing:
                raise PermanentError(
                    f"instance {name} has no disk with device name {', '.join(missing)} "
                    f"(attached: {', '.join(attached) or 'none'})"
                )
            data["disks"] = [_disk_record(attached[n]) for n in fault.get("deviceNames")]
            key = f"{key}/disks/{','.join(fault.get('deviceNames'))}"
            display = f"disks {', '.join(fault.get('deviceNames'))} of {display}"
        return [TargetRef(key=key, display=display, labels=dict(instance.labels), data=data)]

    def inject(self, target: TargetRef, fault: FaultSpec, fault_id: str, expires_at: float) -> str:
        project, zone, name = self._where(fault, target)
        action = fault.action.name
        where = {"project": project, "zone": zone, "instance": name}
        if action == "node-stop":
            status = self._get(project, zone, name).status
            if status not in ("STOPPING", "TERMINATED"):
                self._run(f"stop {name}", self._client().stop_unary, where)
            self._wait_status(project, zone, name, "TERMINATED")
            return f"stopped instance {name}"
        if action == "node-reset":
            status = self._get(project, zone, name).status
            if status != "RUNNING":
                raise PermanentError(f"instance {name} is {status}; only a running instance is reset")
            self._run(f"reset {name}", self._client().reset_unary, where)
            return f"reset instance {name}"
        if action == "disk-loss":
            disks = self._recorded_disks(target)
            attached = {d.device_name for d in self._get(project, zone, name).disks}
            for disk in disks:
                if disk["deviceName"] in attached:
                    self._run(
                        f"detach disk {disk['deviceName']} from {name}",
                        self._client().detach_disk_unary,
                        where | {"device_name": disk["deviceName"]},
                    )
            return f"detached disks {', '.join(d['deviceName'] for d in disks)} from instance {name}"
        raise PermanentError(f"GCPChaos has no action {action!r}")

    def recover(self, target: TargetRef, fault: FaultSpec, fault_id: str) -> None:
        action = fault.action.name
        if action == "node-reset":
            return  # one-shot: nothing to undo
        project, zone, name = self._where(fault, target)
        where = {"project": project, "zone": zone, "instance": name}
        if action == "node-stop":
            status = self._get(project, zone, name).status
            if status in RUNNING:
                return
            if status == "STOPPING":
                status = self._wait_status(project, zone, name, "TERMINATED")
            if status != "TERMINATED":
                raise PermanentError(f"instance {name} is {status}; only a stopped instance is started again")
            self._run(f"start {name}", self._client().start_unary, where)
            return
        if action == "disk-loss":
            attached = {d.device_name: d for d in self._get(project, zone, name).disks}
            for disk in self._recorded_disks(target):
                current = attached.get(disk["deviceName"])
                if current is not None:
                    if _resource_path(current.source) != _resource_path(disk["source"]):
                        raise PermanentError(
                            f"device name {disk['deviceName']} of {name} is now {_resource_path(current.source)}, "
                            f"not {_resource_path(disk['source'])}; not attaching it back"
                        )
                    continue
                resource = compute_v1.AttachedDisk(
                    source=disk["source"],
                    device_name=disk["deviceName"],
                    mode=disk["mode"],
                    auto_delete=disk["autoDelete"],
                    boot=disk["boot"],
                )
                if disk.get("interface"):
                    resource.interface = disk["interface"]
                self._run(
                    f"attach disk {disk['deviceName']} to {name}",
                    self._client().attach_disk_unary,
                    where | {"attached_disk_resource": resource},
                )
            return
        raise PermanentError(f"GCPChaos has no action {action!r}")

    # -- helpers ------------------------------------------------------------------------------

    def _where(self, fault: FaultSpec, target: TargetRef | None) -> tuple[str, str, str]:
        data = target.data if target is not None else {}
        return (
            data.get("project") or fault.get("project") or self.conn.project,
            data.get("zone") or fault.get("zone") or self.conn.zone,
            data.get("instance") or fault.get("instance"),
        )

    @staticmethod
    def _recorded_disks(target: TargetRef) -> list[dict[str, Any]]:
        disks = target.data.get("disks")
        if not disks:
            raise PermanentError(f"{target.display}: the target records no disks (it was not made by candidates)")
        return disks

    def _credentials(self) -> Any:
        if self.conn.credentials is not None:
            return self.conn.credentials
        if self.conn.service_account_info is not None:
            from google.oauth2 import service_account

            try:
                return service_account.Credentials.from_service_account_info(
                    self.conn.service_account_info, scopes=list(SCOPES)
                )
            except (ValueError, KeyError) as exc:  # the message names the missing field, not its value
                raise PermanentError(f"the service account key is not usable: {type(exc).__name__}") from None
        raise PermanentError("no GCP credentials: give a service account key")

    def _client(self) -> compute_v1.InstancesClient:
        if self._instances is None:
            options = {"api_endpoint": self.conn.api_endpoint} if self.conn.api_endpoint else None
            credentials = self._credentials()
            self._instances = compute_v1.InstancesClient(
                credentials=credentials, client_options=options, transport="rest"
            )
            self._operations = compute_v1.ZoneOperationsClient(
                credentials=credentials, client_options=options, transport="rest"
            )
        return self._instances

    def _ops(self) -> compute_v1.ZoneOperationsClient:
        self._client()
        assert self._operations is not None
        return self._operations

    def _retry(self) -> gretry.Retry | None:
        if self.conn.retry_timeout <= 0:
            return None
        return gretry.Retry(
            predicate=gretry.if_transient_error,
            initial=0.5,
            maximum=5.0,
            multiplier=2.0,
            timeout=self.conn.retry_timeout,
        )

    def _call(self, what: str, fn: Callable[..., Any], *, not_found: str = "", **kwargs: Any) -> Any:
        try:
            return fn(**kwargs, retry=self._retry(), timeout=self.conn.timeout)
        except gexc.NotFound as exc:
            raise PermanentError(not_found or f"{what}: 404: {exc.message}") from None
        except gexc.GoogleAPICallError as exc:
            raise _api_error(what, exc) from None
        except gexc.RetryError as exc:
            raise TransientError(f"{what}: gave up retrying: {exc.cause or exc}") from None
        except (requests.exceptions.RequestException, auth_exc.TransportError) as exc:
            raise TransientError(f"{what}: cannot reach the Compute Engine API: {type(exc).__name__}") from None
        except auth_exc.GoogleAuthError as exc:
            raise PermanentError(f"{what}: authentication failed: {type(exc).__name__}") from None

    def _get(self, project: str, zone: str, name: str) -> compute_v1.Instance:
        return self._call(
            f"get instance {name}",
            self._client().get,
            not_found=f"instance {name} does not exist in {project}/{zone}",
            project=project,
            zone=zone,
            instance=name,
        )

    def _run(self, what: str, method: Callable[..., compute_v1.Operation], where: dict[str, Any]) -> None:
        """Start an operation and wait until it is DONE; its error, if any, is raised."""
        op = self._call(what, method, **where)
        deadline = time.monotonic() + self.conn.wait_timeout
        while op.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() >= deadline:
                raise TransientError(f"{what}: operation {op.name} is not done after {self.conn.wait_timeout:g}s")
            # `wait` returns when the operation is done or after about two minutes, whichever is first.
            op = self._call(what, self._ops().wait, project=where["project"], zone=where["zone"], operation=op.name)
        errors = list(op.error.errors) if op.error else []
        if errors:
            text = "; ".join(f"{e.code}: {e.message}" for e in errors)
            code = op.http_error_status_code
            error = TransientError if code == 429 or code >= 500 else PermanentError
            raise error(f"{what}: {text}")

    def _wait_status(self, project: str, zone: str, name: str, want: str) -> str:
        deadline = time.monotonic() + self.conn.wait_timeout
        while True:
            status = self._get(project, zone, name).status
            if status == want:
                return status
            if time.monotonic() >= deadline:
                raise TransientError(f"instance {name} is still {status} after {self.conn.wait_timeout:g}s")
            time.sleep(self.conn.poll_interval)


def _disk_record(disk: compute_v1.AttachedDisk) -> dict[str, Any]:
    return {
        "deviceName": disk.device_name,
        "source": disk.source,
        "mode": disk.mode or "READ_WRITE",
        "autoDelete": bool(disk.auto_delete),
        "boot": bool(disk.boot),
        "interface": disk.interface or "",
    }


def _resource_path(link: str) -> str:
    """`projects/p/zones/z/disks/d` of a full or partial resource URL."""
    index = link.find("projects/")
    return link[index:] if index >= 0 else link


def _api_error(what: str, exc: gexc.GoogleAPICallError) -> TransientError | PermanentError:
    code = exc.code or 0
    text = f"{what}: {code}: {exc.message}"
    if isinstance(exc, gexc.TooManyRequests | gexc.ServerError | gexc.DeadlineExceeded) or code >= 500:
        return TransientError(text)
    return PermanentError(text)
