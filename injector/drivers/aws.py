"""AWSChaos through the EC2 API (boto3): stop or reboot an instance, or detach an EBS volume from it.

    driver = AWSDriver(AWSConnection(region="us-east-1", access_key_id=..., secret_access_key=...))
    [target] = driver.candidates(None, "", fault)      # the instance (or volume) the spec names
    driver.inject(target, fault, fault_id, expires_at)  # stop / reboot / detach, and wait for it
    driver.recover(target, fault, fault_id)             # start / nothing / attach again at the same device

The spec's `awsRegion` picks the region (the connection's is the default). The spec's `endpoint` is
honoured only when the connection allows it (`allow_spec_endpoint`): a manifest must not steer the
control plane's signed requests to an arbitrary URL. The secret key is never logged nor put in a
message (the connection's repr hides it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from injector.faults import FaultSpec

from .base import PermanentError, TargetRef, TransientError

#: Error codes worth retrying: throttling, AWS-side trouble, and a resource between two states.
TRANSIENT_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequestsException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "InsufficientInstanceCapacity",
        "IncorrectInstanceState",
        "IncorrectState",
    }
)
GONE = frozenset({"shutting-down", "terminated"})


@dataclass(frozen=True)
class AWSConnection:
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    endpoint_url: str | None = None
    session_token: str | None = field(default=None, repr=False)
    #: Let a spec's `endpoint` replace endpoint_url (Chaos Mesh's LocalStack use); off by default.
    allow_spec_endpoint: bool = False
    max_attempts: int = 3  # botocore's own retries (standard mode) per call, first attempt included
    timeout: float = 30.0  # connect and read timeout of one HTTP request, seconds
    wait_timeout: float = 600.0  # how long to wait for an instance or a volume to reach a state
    poll_interval: float = 5.0


class AWSDriver:
    """The Driver protocol for AWSChaos: ec2-stop, ec2-restart (one-shot), detach-volume."""

    def __init__(self, connection: AWSConnection) -> None:
        self.conn = connection
        self._clients: dict[tuple[str, str | None], Any] = {}

    # -- the Driver protocol --------------------------------------------------------------------

    def candidates(self, selector: dict[str, Any] | None, namespace: str, fault: FaultSpec) -> list[TargetRef]:
        region, endpoint = self._where(fault)
        ec2 = self._client(region, endpoint)
        instance_id = fault.get("ec2Instance")
        instance = self._describe_instance(ec2, instance_id)
        if instance["State"]["Name"] in GONE:
            raise PermanentError(f"EC2 instance {instance_id} is {instance['State']['Name']}")
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", ()) if isinstance(t.get("Value"), str)}
        name = tags.get("Name")
        data: dict[str, Any] = {"region": region, "instanceId": instance_id}
        key = f"aws/{region}/{instance_id}"
        display = f"{instance_id}{f' ({name})' if name else ''} in {region}"
        if fault.action.name == "detach-volume":
            volume_id, device = fault.get("volumeID"), fault.get("deviceName")
            volume = self._describe_volume(ec2, volume_id)
            attachment = _attachment(volume, instance_id)
            if attachment is None:
                raise PermanentError(f"EBS volume {volume_id} is not attached to {instance_id}")
            if attachment["Device"] != device:
                raise PermanentError(
                    f"EBS volume {volume_id} is attached to {instance_id} as {attachment['Device']}, not {device}"
                )
            data |= {"volumeId": volume_id, "device": device}
            key = f"{key}/{volume_id}"
            display = f"{volume_id} ({device}) on {display}"
        return [TargetRef(key=key, display=display, labels=tags, data=data)]

    def inject(self, target: TargetRef, fault: FaultSpec, fault_id: str, expires_at: float) -> str:
        ec2, instance_id = self._target(target, fault)
        action = fault.action.name
        if action == "ec2-stop":
            state = self._state(ec2, instance_id)
            if state in GONE:
                raise PermanentError(f"EC2 instance {instance_id} is {state}")
            if state not in ("stopping", "stopped"):
                self._call(f"stop {instance_id}", ec2.stop_instances, InstanceIds=[instance_id])
            self._wait_state(ec2, instance_id, "stopped")
            return f"stopped EC2 instance {instance_id}"
        if action == "ec2-restart":
            state = self._state(ec2, instance_id)
            if state != "running":
                raise PermanentError(f"EC2 instance {instance_id} is {state}; only a running instance is rebooted")
            self._call(f"reboot {instance_id}", ec2.reboot_instances, InstanceIds=[instance_id])
            return f"rebooted EC2 instance {instance_id}"
        if action == "detach-volume":
            volume_id, device = self._volume(target, fault)
            volume = self._describe_volume(ec2, volume_id)
            attachment = _attachment(volume, instance_id)
            if attachment is None:
                if volume["State"] == "available":
                    return f"EBS volume {volume_id} was already detached from {instance_id}"
                raise PermanentError(f"EBS volume {volume_id} is not attached to {instance_id}")
            if attachment["State"] in ("attaching", "attached"):
                self._call(
                    f"detach {volume_id} from {instance_id}",
                    ec2.detach_volume,
                    VolumeId=volume_id,
                    InstanceId=instance_id,
                    Device=device,
                )
            self._wait_volume(ec2, volume_id, lambda v: v["State"] == "available", "available")
            return f"detached EBS volume {volume_id} ({device}) from EC2 instance {instance_id}"
        raise PermanentError(f"AWSChaos has no action {action!r}")

    def recover(self, target: TargetRef, fault: FaultSpec, fault_id: str) -> None:
        action = fault.action.name
        if action == "ec2-restart":
            return  # one-shot: nothing to undo
        ec2, instance_id = self._target(target, fault)
        if action == "ec2-stop":
            state = self._state(ec2, instance_id)
            if state in GONE:
                raise PermanentError(f"EC2 instance {instance_id} is {state}; it cannot be started again")
            if state == "stopping":
                state = self._wait_state(ec2, instance_id, "stopped")
            if state == "stopped":
                self._call(f"start {instance_id}", ec2.start_instances, InstanceIds=[instance_id])
            self._wait_state(ec2, instance_id, "running")
            return
        if action == "detach-volume":
            volume_id, device = self._volume(target, fault)
            volume = self._describe_volume(ec2, volume_id)
            others = [a for a in volume.get("Attachments", ()) if a.get("InstanceId") != instance_id]
            if others and others[0].get("State") in ("attaching", "attached"):
                raise PermanentError(
                    f"EBS volume {volume_id} is now attached to {others[0]['InstanceId']}; not attaching it back"
                )
            attachment = _attachment(volume, instance_id)
            if attachment is not None and attachment["State"] in ("attaching", "attached"):
                if attachment["Device"] != device:
                    raise PermanentError(
                        f"EBS volume {volume_id} is attached to {instance_id} as {attachment['Device']}, not {device}"
                    )
            else:
                if volume["State"] != "available":  # still detaching
                    self._wait_volume(ec2, volume_id, lambda v: v["State"] == "available", "available")
                self._call(
                    f"attach {volume_id} to {instance_id}",
                    ec2.attach_volume,
                    VolumeId=volume_id,
                    InstanceId=instance_id,
                    Device=device,
                )
            self._wait_volume(
                ec2,
                volume_id,
                lambda v: (a := _attachment(v, instance_id)) is not None and a["State"] == "attached",
                f"attached to {instance_id}",
            )
            return
        raise PermanentError(f"AWSChaos has no action {action!r}")

    # -- helpers ------------------------------------------------------------------------------

    def _where(self, fault: FaultSpec) -> tuple[str, str | None]:
        region = fault.get("awsRegion") or self.conn.region
        endpoint = self.conn.endpoint_url
        if self.conn.allow_spec_endpoint and fault.get("endpoint"):
            endpoint = fault.get("endpoint")
        return region, endpoint

    def _target(self, target: TargetRef, fault: FaultSpec) -> tuple[Any, str]:
        region, endpoint = self._where(fault)
        region = target.data.get("region") or region
        return self._client(region, endpoint), target.data.get("instanceId") or fault.get("ec2Instance")

    @staticmethod
    def _volume(target: TargetRef, fault: FaultSpec) -> tuple[str, str]:
        return (
            target.data.get("volumeId") or fault.get("volumeID"),
            target.data.get("device") or fault.get("deviceName"),
        )

    def _client(self, region: str, endpoint: str | None) -> Any:
        key = (region, endpoint)
        if key not in self._clients:
            session = boto3.session.Session(
                aws_access_key_id=self.conn.access_key_id,
                aws_secret_access_key=self.conn.secret_access_key,
                aws_session_token=self.conn.session_token,
                region_name=region,
            )
            config = Config(
                retries={"max_attempts": max(1, self.conn.max_attempts), "mode": "standard"},
                connect_timeout=self.conn.timeout,
                read_timeout=self.conn.timeout,
            )
            self._clients[key] = session.client("ec2", endpoint_url=endpoint, config=config)
        return self._clients[key]

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            raise _client_error(what, exc) from None
        except (HTTPClientError, ConnectionError) as exc:
            raise TransientError(f"{what}: cannot reach the EC2 API: {exc}") from None
        except BotoCoreError as exc:
            raise PermanentError(f"{what}: {exc}") from None

    def _describe_instance(self, ec2: Any, instance_id: str) -> dict[str, Any]:
        out = self._call(f"describe {instance_id}", ec2.describe_instances, InstanceIds=[instance_id])
        for reservation in out.get("Reservations", ()):
            for instance in reservation.get("Instances", ()):
                if instance.get("InstanceId") == instance_id:
                    return instance
        raise PermanentError(f"EC2 instance {instance_id} does not exist")

    def _describe_volume(self, ec2: Any, volume_id: str) -> dict[str, Any]:
        out = self._call(f"describe {volume_id}", ec2.describe_volumes, VolumeIds=[volume_id])
        for volume in out.get("Volumes", ()):
            if volume.get("VolumeId") == volume_id:
                return volume
        raise PermanentError(f"EBS volume {volume_id} does not exist")

    def _state(self, ec2: Any, instance_id: str) -> str:
        return self._describe_instance(ec2, instance_id)["State"]["Name"]

    def _wait_state(self, ec2: Any, instance_id: str, want: str) -> str:
        deadline = time.monotonic() + self.conn.wait_timeout
        while True:
            state = self._state(ec2, instance_id)
            if state == want:
                return state
            if state in GONE:
                raise PermanentError(f"EC2 instance {instance_id} is {state}, waiting for {want}")
            if time.monotonic() >= deadline:
                raise TransientError(f"EC2 instance {instance_id} is still {state} after {self.conn.wait_timeout:g}s")
            time.sleep(self.conn.poll_interval)

    def _wait_volume(self, ec2: Any, volume_id: str, ok: Callable[[dict[str, Any]], bool], want: str) -> None:
        deadline = time.monotonic() + self.conn.wait_timeout
        while True:
            volume = self._describe_volume(ec2, volume_id)
            if ok(volume):
                return
            if volume["State"] in ("deleting", "deleted", "error"):
                raise PermanentError(f"EBS volume {volume_id} is {volume['State']}, waiting for {want}")
            if time.monotonic() >= deadline:
                raise TransientError(f"EBS volume {volume_id} is not {want} after {self.conn.wait_timeout:g}s")
            time.sleep(self.conn.poll_interval)


def _attachment(volume: dict[str, Any], instance_id: str) -> dict[str, Any] | None:
    for attachment in volume.get("Attachments", ()):
        if attachment.get("InstanceId") == instance_id and attachment.get("State") != "detached":
            return attachment
    return None


def _client_error(what: str, exc: ClientError) -> TransientError | PermanentError:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    message = error.get("Message", "") or str(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    text = f"{what}: {code + ': ' if code else ''}{message}"
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        return TransientError(text)
    return PermanentError(text)
