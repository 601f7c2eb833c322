"""AzureChaos through Azure Resource Manager (azure-mgmt-compute): power off or restart a VM, or
detach a managed data disk from it.

    driver = AzureDriver(AzureConnection(subscription_id=..., resource_group=..., tenant_id=...,
                                         client_id=..., client_secret=...))
    [target] = driver.candidates(None, "", fault)      # the VM (or its data disk) the spec names
    driver.inject(target, fault, fault_id, expires_at)  # power off / restart / detach, waiting for ARM
    driver.recover(target, fault, fault_id)             # start / nothing / attach at the same LUN again

The spec's `subscriptionID` and `resourceGroupName` name where the VM is (the connection's are the
defaults). For disk-detach, `candidates` records the disk as attached (LUN, managed disk id,
caching, ...) in TargetRef.data, and recovery puts exactly that back in the VM's storage profile.
The client secret is never logged nor put in a message (the connection's repr hides it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from injector.faults import FaultSpec

from .base import PermanentError, TargetRef, TransientError

ARM = "https://management.azure.com"
RUNNING = frozenset({"running", "starting"})
STOPPED = frozenset({"stopped", "stopping", "deallocated", "deallocating"})


@dataclass(frozen=True)
class AzureConnection:
    subscription_id: str
    resource_group: str
    #: A service principal (tenant_id, client_id, client_secret); or give `credential`, any
    #: azure-core TokenCredential (a managed identity, or a stub against an emulator).
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    credential: Any = field(default=None, repr=False)
    base_url: str = ARM  # the ARM endpoint (another cloud's, or an emulator's)
    authority_host: str | None = None  # Entra ID host for another cloud, e.g. login.microsoftonline.us
    connection_verify: bool | str = True  # or a CA bundle path for a private endpoint
    #: "power-off" keeps the VM allocated (Chaos Mesh's vm-stop); "deallocate" releases its compute.
    stop_mode: str = "power-off"
    retries: int = 3  # azure-core's own retries per request
    timeout: float = 60.0  # connect and read timeout of one HTTP request, seconds
    polling_interval: float = 5.0  # between long-running-operation polls, unless ARM says Retry-After
    wait_timeout: float = 900.0


class AzureDriver:
    """The Driver protocol for AzureChaos: vm-stop, vm-restart (one-shot), disk-detach."""

    def __init__(self, connection: AzureConnection) -> None:
        if connection.stop_mode not in ("power-off", "deallocate"):
            raise ValueError(f"stop_mode must be power-off or deallocate, not {connection.stop_mode!r}")
        self.conn = connection
        self._clients: dict[str, ComputeManagementClient] = {}

    # -- the Driver protocol --------------------------------------------------------------------

    def candidates(self, selector: dict[str, Any] | None, namespace: str, fault: FaultSpec) -> list[TargetRef]:
        subscription, group, name = self._where(fault, None)
        vm = self._get(subscription, group, name)
        data: dict[str, Any] = {"subscription": subscription, "resourceGroup": group, "vm": name}
        key = f"azure/{subscription}/{group}/{name}"
        display = f"{name} in {group}"
        if fault.action.name == "disk-detach":
            disk_name, lun = fault.get("diskName"), fault.get("lun")
            disk = _data_disk(vm, lun)
            if disk is None or (disk.name or "").lower() != disk_name.lower():
                attached = ", ".join(f"{d.name} at LUN {d.lun}" for d in _data_disks(vm)) or "none"
                raise PermanentError(f"VM {name} has no data disk {disk_name} at LUN {lun} (attached: {attached})")
            if disk.managed_disk is None or not disk.managed_disk.id:
                raise PermanentError(f"data disk {disk_name} of VM {name} is not a managed disk")
            data["disk"] = {
                "lun": lun,
                "name": disk.name,
                "managedDiskId": disk.managed_disk.id,
                "caching": _plain(disk.caching),
                "writeAcceleratorEnabled": disk.write_accelerator_enabled,
                "deleteOption": _plain(disk.delete_option),
            }
            key = f"{key}/lun/{lun}"
            display = f"data disk {disk.name} (LUN {lun}) of {display}"
        labels = {k: v for k, v in (vm.tags or {}).items() if isinstance(v, str)}
        return [TargetRef(key=key, display=display, labels=labels, data=data)]

    def inject(self, target: TargetRef, fault: FaultSpec, fault_id: str, expires_at: float) -> str:
        subscription, group, name = self._where(fault, target)
        vms = self._client(subscription).virtual_machines
        action = fault.action.name
        if action == "vm-stop":
            power = self._power(subscription, group, name)
            if power not in STOPPED:
                if self.conn.stop_mode == "deallocate":
                    self._lro(f"deallocate VM {name}", vms.begin_deallocate, group, name)
                else:
                    self._lro(f"power off VM {name}", vms.begin_power_off, group, name)
            return f"{'deallocated' if self.conn.stop_mode == 'deallocate' else 'powered off'} VM {name}"
        if action == "vm-restart":
            power = self._power(subscription, group, name)
            if power != "running":
                raise PermanentError(f"VM {name} is {power}; only a running VM is restarted")
            self._lro(f"restart VM {name}", vms.begin_restart, group, name)
            return f"restarted VM {name}"
        if action == "disk-detach":
            disk = self._recorded_disk(target)
            vm = self._get(subscription, group, name)
            current = _data_disk(vm, disk["lun"])
            if current is not None and _same_disk(current, disk):
                vm.storage_profile.data_disks = [d for d in _data_disks(vm) if d.lun != disk["lun"]]
                self._lro(f"detach {disk['name']} from VM {name}", vms.begin_create_or_update, group, name, vm)
            return f"detached data disk {disk['name']} (LUN {disk['lun']}) from VM {name}"
        raise PermanentError(f"AzureChaos has no action {action!r}")

    def recover(self, target: TargetRef, fault: FaultSpec, fault_id: str) -> None:
        action = fault.action.name
        if action == "vm-restart":
            return  # one-shot: nothing to undo
        subscription, group, name = self._where(fault, target)
        vms = self._client(subscription).virtual_machines
        if action == "vm-stop":
            if self._power(subscription, group, name) not in RUNNING:
                self._lro(f"start VM {name}", vms.begin_start, group, name)
            return
        if action == "disk-detach":
            disk = self._recorded_disk(target)
            vm = self._get(subscription, group, name)
            current = _data_disk(vm, disk["lun"])
            if current is not None:
                if _same_disk(current, disk):
                    return
                raise PermanentError(
                    f"LUN {disk['lun']} of VM {name} now holds {current.name}; not attaching {disk['name']} back"
                )
            again = m.DataDisk(
                lun=disk["lun"],
                name=disk["name"],
                create_option="Attach",
                managed_disk=m.ManagedDiskParameters(id=disk["managedDiskId"]),
            )
            for attr, key in (
                ("caching", "caching"),
                ("write_accelerator_enabled", "writeAcceleratorEnabled"),
                ("delete_option", "deleteOption"),
            ):
                if disk.get(key) is not None:
                    setattr(again, attr, disk[key])
            vm.storage_profile.data_disks = [*_data_disks(vm), again]
            self._lro(f"attach {disk['name']} to VM {name}", vms.begin_create_or_update, group, name, vm)
            return
        raise PermanentError(f"AzureChaos has no action {action!r}")

    # -- helpers ------------------------------------------------------------------------------

    def _where(self, fault: FaultSpec, target: TargetRef | None) -> tuple[str, str, str]:
        data = target.data if target is not None else {}
        return (
            data.get("subscription") or fault.get("subscriptionID") or self.conn.subscription_id,
            data.get("resourceGroup") or fault.get("resourceGroupName") or self.conn.resource_group,
            data.get("vm") or fault.get("vmName"),
        )

    @staticmethod
    def _recorded_disk(target: TargetRef) -> dict[str, Any]:
        disk = target.data.get("disk")
        if not disk:
            raise PermanentError(f"{target.display}: the target records no disk (it was not made by candidates)")
        return disk

    def _credential(self) -> Any:
        if self.conn.credential is not None:
            return self.conn.credential
        if self.conn.tenant_id and self.conn.client_id and self.conn.client_secret:
            from azure.identity import ClientSecretCredential

            extra = {"authority": self.conn.authority_host} if self.conn.authority_host else {}
            return ClientSecretCredential(self.conn.tenant_id, self.conn.client_id, self.conn.client_secret, **extra)
        raise PermanentError("no Azure credentials: give tenant_id, client_id and client_secret")

    def _client(self, subscription: str) -> ComputeManagementClient:
        if subscription not in self._clients:
            base = self.conn.base_url.rstrip("/")
            options: dict[str, Any] = {
                "polling_interval": self.conn.polling_interval,
                "retry_total": self.conn.retries,
                "connection_timeout": self.conn.timeout,
                "read_timeout": self.conn.timeout,
                "connection_verify": self.conn.connection_verify,
            }
            if base != ARM:  # another cloud's ARM: tokens are for that audience
                options["credential_scopes"] = [f"{base}/.default"]
            self._clients[subscription] = ComputeManagementClient(
                self._credential(), subscription, base_url=base, **options
            )
        return self._clients[subscription]

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, not_found: str = "", **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ResourceNotFoundError as exc:
            raise PermanentError(not_found or f"{what}: {_message(exc)}") from None
        except ClientAuthenticationError as exc:
            raise PermanentError(f"{what}: authentication failed: {_message(exc)}") from None
        except HttpResponseError as exc:
            status = exc.status_code or 0
            error = TransientError if status in (409, 429) or status >= 500 else PermanentError
            raise error(f"{what}: {status}: {_message(exc)}") from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TransientError(f"{what}: cannot reach Azure Resource Manager: {type(exc).__name__}") from None

    def _lro(self, what: str, begin: Callable[..., Any], *args: Any) -> None:
        poller = self._call(what, begin, *args)
        self._call(what, poller.result, timeout=self.conn.wait_timeout)
        if not poller.done():
            raise TransientError(f"{what}: not done after {self.conn.wait_timeout:g}s")

    def _get(self, subscription: str, group: str, name: str) -> m.VirtualMachine:
        return self._call(
            f"get VM {name}",
            self._client(subscription).virtual_machines.get,
            group,
            name,
            not_found=f"VM {name} does not exist in resource group {group}",
        )

    def _power(self, subscription: str, group: str, name: str) -> str:
        view = self._call(
            f"get the state of VM {name}",
            self._client(subscription).virtual_machines.instance_view,
            group,
            name,
            not_found=f"VM {name} does not exist in resource group {group}",
        )
        for status in view.statuses or ():
            if (status.code or "").startswith("PowerState/"):
                return status.code.split("/", 1)[1]
        return "unknown"


def _data_disks(vm: m.VirtualMachine) -> list[m.DataDisk]:
    profile = vm.storage_profile
    return list(profile.data_disks or []) if profile is not None else []


def _data_disk(vm: m.VirtualMachine, lun: int) -> m.DataDisk | None:
    return next((d for d in _data_disks(vm) if d.lun == lun and not d.to_be_detached), None)


def _same_disk(disk: m.DataDisk, recorded: dict[str, Any]) -> bool:
    disk_id = disk.managed_disk.id if disk.managed_disk is not None else ""
    return (disk_id or "").lower() == recorded["managedDiskId"].lower()


def _plain(value: Any) -> Any:
    """An SDK enum member as its plain string, so TargetRef.data stays JSON."""
    return getattr(value, "value", value)


def _message(exc: Exception) -> str:
    """The provider's own words (ARM's error code and message), without the request's headers."""
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "message", None):
        return f"{error.code}: {error.message}" if getattr(error, "code", None) else str(error.message)
    return str(getattr(exc, "message", "") or exc).splitlines()[0]
