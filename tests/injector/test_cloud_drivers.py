"""The cloud drivers (AWSChaos, GCPChaos, AzureChaos) with their real client libraries over real HTTP
to local emulators; no database, no patched client:

- AWS: moto in server mode (ThreadedMotoServer on 127.0.0.1), boto3 pointed at it by endpoint_url;
  for 5xx, a pass-through front (below) that answers 503 while told to.
- GCP: tests/fakes/gcp_compute.py, a Compute Engine REST emulator on http://127.0.0.1, reached by
  google-cloud-compute's REST transport through client_options api_endpoint and AnonymousCredentials.
- Azure: tests/fakes/azure_compute.py, an ARM emulator on https://127.0.0.1 (self-signed, trusted via
  connection_verify), reached by ComputeManagementClient through base_url and a TokenCredential stub.

Each test reads the state back as the provider reports it, with the same client library.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from injector.drivers.aws import AWSConnection, AWSDriver
from injector.drivers.azure import AzureConnection, AzureDriver
from injector.drivers.base import PermanentError, TransientError
from injector.drivers.gcp import GCPConnection, GCPDriver
from injector.faults import FaultSpec, kind
from tests.fakes.azure_compute import FakeAzureCompute
from tests.fakes.gcp_compute import FakeComputeEngine
from tests.fakes.moto_server import moto_server

REGION = "us-east-1"
AWS_SECRET = "moto-secret-key-never-shown"
PROJECT, ZONE = "shop-project", "us-central1-a"
SUBSCRIPTION, GROUP = "0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f", "shop-rg"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- AWS: moto server -------------------------------------------------------------------------


class FailingFront:
    """Forwards every request to moto as it is, or answers `fail_with` (EC2's XML error) while set."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.fail_with: int | None = None
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if front.fail_with is not None:
                    status, headers = front.fail_with, {"Content-Type": "text/xml"}
                    data = (
                        b"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>InternalError</Code>"
                        b"<Message>An internal error has occurred</Message></Error></Errors>"
                        b"<RequestID>front</RequestID></Response>"
                    )
                else:
                    conn = http.client.HTTPConnection(*upstream, timeout=10)
                    conn.request("POST", self.path, body, {k: v for k, v in self.headers.items() if k != "Host"})
                    answer = conn.getresponse()
                    status, data = answer.status, answer.read()
                    headers = {
                        k: v for k, v in answer.getheaders() if k.lower() in ("content-type", "x-amzn-requestid")
                    }
                    conn.close()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def ec2(moto_url: str) -> Any:
    """boto3's own EC2 client on moto: to set up the world and to read it back."""
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key=AWS_SECRET,
    )


def aws_driver(url: str, **kw: Any) -> AWSDriver:
    conn = AWSConnection(
        region=REGION, access_key_id="testing", secret_access_key=AWS_SECRET, endpoint_url=url, poll_interval=0.05, **kw
    )
    return AWSDriver(conn)


@pytest.fixture(scope="module")
def ami(moto_url: str) -> str:
    ec2 = boto3.client(
        "ec2", region_name=REGION, endpoint_url=moto_url, aws_access_key_id="testing", aws_secret_access_key=AWS_SECRET
    )
    return ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]


@pytest.fixture
def instance(ec2: Any, ami: str) -> dict[str, str]:
    """A running instance with an EBS volume attached as /dev/sdf."""
    reservation = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        Placement={"AvailabilityZone": "us-east-1a"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}]}],
    )
    instance_id = reservation["Instances"][0]["InstanceId"]
    volume_id = ec2.create_volume(Size=8, AvailabilityZone="us-east-1a")["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    return {"instance": instance_id, "volume": volume_id}


def aws_fault(action: str, instance_id: str, **extra: Any) -> FaultSpec:
    spec = {"action": action, "secretName": "aws-creds", "awsRegion": REGION, "ec2Instance": instance_id}
    return kind("AWSChaos").parse(spec | extra)


def ec2_state(ec2: Any, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def ec2_attachments(ec2: Any, volume_id: str) -> list[tuple[str, str, str]]:
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    return [(a["InstanceId"], a["Device"], a["State"]) for a in volume["Attachments"]]


def test_aws_ec2_stop_then_recover_starts_it_again(moto_url: str, ec2: Any, instance: dict[str, str]) -> None:
    driver, fault = aws_driver(moto_url), aws_fault("ec2-stop", instance["instance"])
    [target] = driver.candidates(None, "", fault)
    assert target.key == f"aws/{REGION}/{instance['instance']}"
    assert target.labels == {"Name": "web-1"} and "web-1" in target.display

    assert "stopped" in driver.inject(target, fault, "f-1", time.time() + 60)
    assert ec2_state(ec2, instance["instance"]) == "stopped"
    driver.recover(target, fault, "f-1")
    assert ec2_state(ec2, instance["instance"]) == "running"
    driver.recover(target, fault, "f-1")  # twice is fine
    assert ec2_state(ec2, instance["instance"]) == "running"


def test_aws_ec2_restart_is_one_shot(moto_url: str, ec2: Any, instance: dict[str, str]) -> None:
    driver, fault = aws_driver(moto_url), aws_fault("ec2-restart", instance["instance"])
    [target] = driver.candidates(None, "", fault)
    assert "rebooted" in driver.inject(target, fault, "f-2", time.time() + 60)
    assert ec2_state(ec2, instance["instance"]) == "running"
    driver.recover(target, fault, "f-2")
    driver.recover(target, fault, "f-2")
    assert ec2_state(ec2, instance["instance"]) == "running"

    ec2.stop_instances(InstanceIds=[instance["instance"]])
    with pytest.raises(PermanentError, match="only a running instance"):
        driver.inject(target, fault, "f-2b", time.time() + 60)


def test_aws_detach_volume_then_recover_attaches_it_at_the_same_device(
    moto_url: str, ec2: Any, instance: dict[str, str]
) -> None:
    driver = aws_driver(moto_url)
    fault = aws_fault("detach-volume", instance["instance"], volumeID=instance["volume"], deviceName="/dev/sdf")
    [target] = driver.candidates(None, "", fault)
    assert target.key == f"aws/{REGION}/{instance['instance']}/{instance['volume']}"
    assert target.data["device"] == "/dev/sdf"

    driver.inject(target, fault, "f-3", time.time() + 60)
    assert ec2_attachments(ec2, instance["volume"]) == []
    assert ec2.describe_volumes(VolumeIds=[instance["volume"]])["Volumes"][0]["State"] == "available"
    driver.inject(target, fault, "f-3", time.time() + 60)  # a retried inject finds it detached already

    driver.recover(target, fault, "f-3")
    assert ec2_attachments(ec2, instance["volume"]) == [(instance["instance"], "/dev/sdf", "attached")]
    driver.recover(target, fault, "f-3")
    assert ec2_attachments(ec2, instance["volume"]) == [(instance["instance"], "/dev/sdf", "attached")]


def test_aws_missing_or_mismatched_resources_are_permanent(moto_url: str, instance: dict[str, str]) -> None:
    driver = aws_driver(moto_url)
    with pytest.raises(PermanentError, match="i-0123456789abcdef0"):
        driver.candidates(None, "", aws_fault("ec2-stop", "i-0123456789abcdef0"))
    missing_volume = aws_fault(
        "detach-volume", instance["instance"], volumeID="vol-0123456789abcdef0", deviceName="/dev/sdf"
    )
    with pytest.raises(PermanentError, match="vol-0123456789abcdef0"):
        driver.candidates(None, "", missing_volume)
    wrong_device = aws_fault("detach-volume", instance["instance"], volumeID=instance["volume"], deviceName="/dev/sdg")
    with pytest.raises(PermanentError, match="as /dev/sdf, not /dev/sdg"):
        driver.candidates(None, "", wrong_device)


def test_aws_5xx_and_connection_refused_are_transient(moto_url: str, instance: dict[str, str]) -> None:
    front = FailingFront(("127.0.0.1", int(moto_url.rsplit(":", 1)[1])))
    try:
        driver, fault = aws_driver(front.url, max_attempts=1), aws_fault("ec2-stop", instance["instance"])
        [target] = driver.candidates(None, "", fault)  # through the front to moto
        front.fail_with = 503
        with pytest.raises(TransientError, match="InternalError") as caught:
            driver.inject(target, fault, "f-4", time.time() + 60)
        assert AWS_SECRET not in str(caught.value)
    finally:
        front.stop()
    refused = aws_driver(f"http://127.0.0.1:{closed_port()}", max_attempts=1, timeout=2)
    with pytest.raises(TransientError, match="cannot reach"):
        refused.candidates(None, "", aws_fault("ec2-stop", instance["instance"]))
    assert AWS_SECRET not in repr(refused.conn)


# -- GCP: tests/fakes/gcp_compute.py ------------------------------------------------------------


@pytest.fixture(scope="module")
def gce() -> Iterator[FakeComputeEngine]:
    with FakeComputeEngine() as fake:
        yield fake


@pytest.fixture
def gce_instance(gce: FakeComputeEngine) -> str:
    name = f"web-{len(gce.instances) + 1}"
    gce.add_instance(
        PROJECT, ZONE, name, disks=[(f"{name}-boot", True), (f"{name}-data", False), (f"{name}-logs", False)]
    )
    return name


def gcp_driver(gce: FakeComputeEngine, endpoint: str | None = None) -> GCPDriver:
    conn = GCPConnection(
        project=PROJECT,
        zone=ZONE,
        credentials=AnonymousCredentials(),
        api_endpoint=endpoint or gce.endpoint,
        retry_timeout=0,
        timeout=5,
        poll_interval=0.05,
    )
    return GCPDriver(conn)


def gcp_fault(action: str, instance: str, **extra: Any) -> FaultSpec:
    spec = {"action": action, "secretName": "gcp-key", "project": PROJECT, "zone": ZONE, "instance": instance}
    return kind("GCPChaos").parse(spec | extra)


def gcp_instance(gce: FakeComputeEngine, name: str) -> compute_v1.Instance:
    """As Compute Engine reports it, through google-cloud-compute itself."""
    client = compute_v1.InstancesClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": gce.endpoint}, transport="rest"
    )
    return client.get(project=PROJECT, zone=ZONE, instance=name)


def gcp_disks(gce: FakeComputeEngine, name: str) -> dict[str, tuple[str, str, bool, bool]]:
    return {
        d.device_name: (d.source.rsplit("/", 1)[1], d.mode, d.auto_delete, d.boot)
        for d in gcp_instance(gce, name).disks
    }


def test_gcp_node_stop_then_recover_starts_it_again(gce: FakeComputeEngine, gce_instance: str) -> None:
    driver, fault = gcp_driver(gce), gcp_fault("node-stop", gce_instance)
    [target] = driver.candidates(None, "", fault)
    assert target.key == f"gcp/{PROJECT}/{ZONE}/{gce_instance}"
    assert target.labels == {"team": "shop"}

    assert "stopped" in driver.inject(target, fault, "g-1", time.time() + 60)
    assert gcp_instance(gce, gce_instance).status == "TERMINATED"
    driver.recover(target, fault, "g-1")
    assert gcp_instance(gce, gce_instance).status == "RUNNING"
    driver.recover(target, fault, "g-1")
    assert gcp_instance(gce, gce_instance).status == "RUNNING"
    assert [c for c in gce.calls if c[1] == gce_instance] == [("stop", gce_instance), ("start", gce_instance)]


def test_gcp_node_reset_is_one_shot(gce: FakeComputeEngine, gce_instance: str) -> None:
    driver, fault = gcp_driver(gce), gcp_fault("node-reset", gce_instance)
    [target] = driver.candidates(None, "", fault)
    assert "reset" in driver.inject(target, fault, "g-2", time.time() + 60)
    assert ("reset", gce_instance) in gce.calls  # a reset leaves no trace on the instance itself
    assert gcp_instance(gce, gce_instance).status == "RUNNING"
    driver.recover(target, fault, "g-2")
    driver.recover(target, fault, "g-2")
    assert [c for c in gce.calls if c[1] == gce_instance] == [("reset", gce_instance)]


def test_gcp_disk_loss_then_recover_attaches_the_same_disks(gce: FakeComputeEngine, gce_instance: str) -> None:
    before = gcp_disks(gce, gce_instance)
    driver = gcp_driver(gce)
    fault = gcp_fault("disk-loss", gce_instance, deviceNames=[f"{gce_instance}-data", f"{gce_instance}-logs"])
    [target] = driver.candidates(None, "", fault)
    assert [d["deviceName"] for d in target.data["disks"]] == [f"{gce_instance}-data", f"{gce_instance}-logs"]

    driver.inject(target, fault, "g-3", time.time() + 60)
    assert list(gcp_disks(gce, gce_instance)) == [f"{gce_instance}-boot"]
    driver.inject(target, fault, "g-3", time.time() + 60)  # a retried inject: nothing left to detach

    driver.recover(target, fault, "g-3")
    assert gcp_disks(gce, gce_instance) == before
    driver.recover(target, fault, "g-3")
    assert gcp_disks(gce, gce_instance) == before


def test_gcp_missing_instance_or_disk_is_permanent(gce: FakeComputeEngine, gce_instance: str) -> None:
    driver = gcp_driver(gce)
    with pytest.raises(PermanentError, match="instance nope-1 does not exist"):
        driver.candidates(None, "", gcp_fault("node-stop", "nope-1"))
    with pytest.raises(PermanentError, match="no disk with device name swap"):
        driver.candidates(None, "", gcp_fault("disk-loss", gce_instance, deviceNames=["swap"]))


def test_gcp_5xx_and_connection_refused_are_transient(gce: FakeComputeEngine, gce_instance: str) -> None:
    driver, fault = gcp_driver(gce), gcp_fault("node-stop", gce_instance)
    [target] = driver.candidates(None, "", fault)
    gce.fail_with = 503
    try:
        with pytest.raises(TransientError, match="503"):
            driver.inject(target, fault, "g-4", time.time() + 60)
    finally:
        gce.fail_with = None
    assert gcp_instance(gce, gce_instance).status == "RUNNING"
    refused = gcp_driver(gce, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientError, match="cannot reach"):
        refused.candidates(None, "", fault)


def test_gcp_key_material_is_not_in_the_repr() -> None:
    conn = GCPConnection(
        project=PROJECT, zone=ZONE, service_account_info={"private_key": "-----BEGIN PRIVATE KEY-----"}
    )
    assert "PRIVATE KEY" not in repr(conn)
    with pytest.raises(PermanentError, match="service account key is not usable") as caught:
        GCPDriver(conn).candidates(None, "", gcp_fault("node-stop", "web-1"))
    assert "PRIVATE KEY" not in str(caught.value)


# -- Azure: tests/fakes/azure_compute.py --------------------------------------------------------


class StaticToken:
    """azure-core's TokenCredential protocol (get_token), handing out a fixed token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAzureCompute]:
    with FakeAzureCompute(tmp_path_factory.mktemp("arm")) as fake:
        yield fake


@pytest.fixture
def vm(arm: FakeAzureCompute) -> str:
    name = f"vm-{len(arm.vms) + 1}"
    arm.add_vm(SUBSCRIPTION, GROUP, name, data_disks=[(f"{name}-data", 0), (f"{name}-logs", 3)])
    return name


def azure_driver(
    arm: FakeAzureCompute, *, token: str | None = None, base_url: str | None = None, **kw: Any
) -> AzureDriver:
    conn = AzureConnection(
        subscription_id=SUBSCRIPTION,
        resource_group=GROUP,
        credential=StaticToken(token or arm.token),
        base_url=base_url or arm.endpoint,
        connection_verify=str(arm.ca_file),
        retries=0,
        timeout=5,
        polling_interval=0.01,
        **kw,
    )
    return AzureDriver(conn)


def azure_fault(action: str, vm: str, **extra: Any) -> FaultSpec:
    spec = {"action": action, "secretName": "az-sp", "subscriptionID": SUBSCRIPTION, "resourceGroupName": GROUP}
    return kind("AzureChaos").parse(spec | {"vmName": vm} | extra)


def arm_client(arm: FakeAzureCompute) -> ComputeManagementClient:
    return ComputeManagementClient(
        StaticToken(arm.token), SUBSCRIPTION, base_url=arm.endpoint, connection_verify=str(arm.ca_file), retry_total=0
    )


def power_state(arm: FakeAzureCompute, name: str) -> str:
    """As ARM reports it, through azure-mgmt-compute itself."""
    view = arm_client(arm).virtual_machines.instance_view(GROUP, name)
    return next(s.code for s in view.statuses if s.code.startswith("PowerState/"))


def data_disks(arm: FakeAzureCompute, name: str) -> dict[int, tuple[str, str, str]]:
    vm = arm_client(arm).virtual_machines.get(GROUP, name)
    return {d.lun: (d.name, d.managed_disk.id, d.caching) for d in vm.storage_profile.data_disks}


@pytest.mark.parametrize(
    ("mode", "stopped"), [("power-off", "PowerState/stopped"), ("deallocate", "PowerState/deallocated")]
)
def test_azure_vm_stop_then_recover_starts_it_again(arm: FakeAzureCompute, vm: str, mode: str, stopped: str) -> None:
    driver, fault = azure_driver(arm, stop_mode=mode), azure_fault("vm-stop", vm)
    [target] = driver.candidates(None, "", fault)
    assert target.key == f"azure/{SUBSCRIPTION}/{GROUP}/{vm}"
    assert target.labels == {"team": "shop"}

    driver.inject(target, fault, "a-1", time.time() + 60)
    assert power_state(arm, vm) == stopped
    driver.recover(target, fault, "a-1")
    assert power_state(arm, vm) == "PowerState/running"
    driver.recover(target, fault, "a-1")
    assert power_state(arm, vm) == "PowerState/running"
    assert [c[0] for c in arm.calls if c[1] == vm] == ["powerOff" if mode == "power-off" else "deallocate", "start"]


def test_azure_vm_restart_is_one_shot(arm: FakeAzureCompute, vm: str) -> None:
    driver, fault = azure_driver(arm), azure_fault("vm-restart", vm)
    [target] = driver.candidates(None, "", fault)
    assert "restarted" in driver.inject(target, fault, "a-2", time.time() + 60)
    assert power_state(arm, vm) == "PowerState/running"
    driver.recover(target, fault, "a-2")
    driver.recover(target, fault, "a-2")
    assert [c for c in arm.calls if c[1] == vm] == [("restart", vm)]


def test_azure_disk_detach_then_recover_attaches_it_at_the_same_lun(arm: FakeAzureCompute, vm: str) -> None:
    before = data_disks(arm, vm)
    driver, fault = azure_driver(arm), azure_fault("disk-detach", vm, diskName=f"{vm}-logs", lun=3)
    [target] = driver.candidates(None, "", fault)
    assert target.key == f"azure/{SUBSCRIPTION}/{GROUP}/{vm}/lun/3"
    assert target.data["disk"]["managedDiskId"].endswith(f"/disks/{vm}-logs")

    driver.inject(target, fault, "a-3", time.time() + 60)
    assert sorted(data_disks(arm, vm)) == [0]
    driver.inject(target, fault, "a-3", time.time() + 60)  # a retried inject: already detached

    driver.recover(target, fault, "a-3")
    assert data_disks(arm, vm) == before
    driver.recover(target, fault, "a-3")
    assert data_disks(arm, vm) == before


def test_azure_missing_vm_or_disk_is_permanent(arm: FakeAzureCompute, vm: str) -> None:
    driver = azure_driver(arm)
    with pytest.raises(PermanentError, match="VM nope does not exist"):
        driver.candidates(None, "", azure_fault("vm-stop", "nope"))
    with pytest.raises(PermanentError, match=f"no data disk {vm}-logs at LUN 1"):
        driver.candidates(None, "", azure_fault("disk-detach", vm, diskName=f"{vm}-logs", lun=1))


def test_azure_5xx_and_connection_refused_are_transient_bad_token_permanent(arm: FakeAzureCompute, vm: str) -> None:
    driver, fault = azure_driver(arm), azure_fault("vm-stop", vm)
    [target] = driver.candidates(None, "", fault)
    arm.fail_with = 503
    try:
        with pytest.raises(TransientError, match="503"):
            driver.inject(target, fault, "a-4", time.time() + 60)
    finally:
        arm.fail_with = None
    assert power_state(arm, vm) == "PowerState/running"

    refused = azure_driver(arm, base_url=f"https://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientError, match="cannot reach"):
        refused.candidates(None, "", fault)

    with pytest.raises(PermanentError, match="authentication failed") as caught:
        azure_driver(arm, token="stolen-token-value").candidates(None, "", fault)
    assert "stolen-token-value" not in str(caught.value)
    conn = AzureConnection(SUBSCRIPTION, GROUP, tenant_id="t", client_id="c", client_secret="sp-secret-value")
    assert "sp-secret-value" not in repr(conn)


def test_every_server_is_stopped_at_the_end(tmp_path: Path) -> None:
    with FakeComputeEngine() as gce_fake, FakeAzureCompute(tmp_path) as arm_fake:
        ports = [int(gce_fake.endpoint.rsplit(":", 1)[1]), int(arm_fake.endpoint.rsplit(":", 1)[1])]
    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
