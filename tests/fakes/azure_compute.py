"""A small Azure Resource Manager emulator for Microsoft.Compute virtual machines: real HTTPS on
127.0.0.1 (a self-signed certificate made with `cryptography`, because azure-core refuses to send a
bearer token over plain HTTP), serving what ComputeManagementClient calls for virtualMachines
get (with $expand=instanceView) / instanceView / powerOff / deallocate / start / restart /
createOrUpdate, with the long-running-operation answers ARM gives: 202 with Azure-AsyncOperation,
Location and Retry-After headers, an operation status that is already Succeeded, and a Location
monitor that answers 200.

    with FakeAzureCompute(tmp_path) as arm:
        arm.add_vm(SUBSCRIPTION, "shop-rg", "web-1", data_disks=[("data-1", 0)])
        client = ComputeManagementClient(credential, SUBSCRIPTION, base_url=arm.endpoint,
                                         connection_verify=arm.ca_file)

Requests need `Authorization: Bearer <arm.token>` and an api-version; `fail_with = 503` makes every
request fail with that status until it is set back to None; `calls` records (verb, vm) pairs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
import re
import secrets
import ssl
import threading
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes import ServedFake

_VM = re.compile(
    r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.compute/virtualmachines/([^/]+)"
    r"(?:/([a-z]+))?$",
    re.IGNORECASE,
)
_OPERATION = re.compile(
    r"^/subscriptions/([^/]+)/providers/microsoft\.compute/locations/([^/]+)/operations/([^/]+)$", re.I
)
POWER = {
    "running": "VM running",
    "stopped": "VM stopped",
    "deallocated": "VM deallocated",
}


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A CA-flagged self-signed certificate for 127.0.0.1/localhost; returns (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-arm.local")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "fake-arm.pem", directory / "fake-arm.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class FakeAzureCompute(ServedFake):
    def __init__(self, directory: Path, *, token: str | None = None, location: str = "westeurope") -> None:
        self.directory = Path(directory)
        self.token = token or secrets.token_urlsafe(16)  # the one bearer token accepted
        self.location = location
        self.vms: dict[tuple[str, str, str], dict[str, Any]] = {}  # keys lower-cased
        self.power: dict[tuple[str, str, str], str] = {}
        self.disks: dict[str, dict[str, Any]] = {}  # lower-cased disk id -> {"id", "name", "managedBy"}
        self.operations: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.fail_with: int | None = None
        self.ca_file: Path | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- state --------------------------------------------------------------------------------

    def disk_id(self, subscription: str, group: str, name: str) -> str:
        return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/disks/{name}"

    def add_disk(self, subscription: str, group: str, name: str) -> str:
        disk_id = self.disk_id(subscription, group, name)
        self.disks[disk_id.lower()] = {"id": disk_id, "name": name, "managedBy": None}
        return disk_id

    def add_vm(
        self,
        subscription: str,
        group: str,
        name: str,
        *,
        power: str = "running",
        data_disks: Sequence[tuple[str, int]] = (),
    ) -> None:
        """`data_disks`: (disk name, lun) pairs; the disks are created when missing."""
        vm_id = (
            f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"
        )
        os_disk = self.add_disk(subscription, group, f"{name}-os")
        self.disks[os_disk.lower()]["managedBy"] = vm_id
        vm = {
            "id": vm_id,
            "name": name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": self.location,
            "tags": {"team": "shop"},
            "properties": {
                "vmId": str(uuid.uuid4()),
                "provisioningState": "Succeeded",
                "hardwareProfile": {"vmSize": "Standard_B2s"},
                "storageProfile": {
                    "osDisk": {
                        "osType": "Linux",
                        "name": f"{name}-os",
                        "createOption": "FromImage",
                        "caching": "ReadWrite",
                        "managedDisk": {"id": os_disk, "storageAccountType": "Premium_LRS"},
                        "diskSizeGB": 30,
                    },
                    "dataDisks": [],
                },
            },
        }
        key = (subscription.lower(), group.lower(), name.lower())
        self.vms[key] = vm
        self.power[key] = power
        disks = []
        for disk, lun in data_disks:
            disk_id = self.disk_id(subscription, group, disk)
            if disk_id.lower() not in self.disks:
                self.add_disk(subscription, group, disk)
            disks.append(
                {
                    "lun": lun,
                    "name": disk,
                    "createOption": "Attach",
                    "caching": "ReadOnly",
                    "managedDisk": {"id": disk_id, "storageAccountType": "Premium_LRS"},
                }
            )
        self._set_data_disks(vm, disks)

    # -- server -------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() first"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeAzureCompute:
        fake = self
        cert, key = self_signed_certificate(self.directory)
        self.ca_file = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                self.request.do_handshake()  # here, in the request's thread, not in the accepting one
                super().setup()

            def do_GET(self) -> None:  # noqa: N802
                fake._serve(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._serve(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                fake._serve(self, "PUT")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, addr = super().get_request()
                return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

        self.serve(Server(("127.0.0.1", 0), Handler), "fake-arm")
        return self

    # -- HTTP ---------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, verb: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        url = urlsplit(handler.path)
        query = {k.lower(): v[0] for k, v in parse_qs(url.query).items()}
        headers: dict[str, str] = {}
        try:
            if self.fail_with is not None:
                raise ArmError(self.fail_with, "InternalServerError", "An internal server error occurred.")
            auth = handler.headers.get("Authorization", "")
            if not auth:
                raise ArmError(
                    401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
                )
            if auth != f"Bearer {self.token}":
                raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
            if "api-version" not in query:
                raise ArmError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
            body = json.loads(raw) if raw.strip() else None
            with self._lock:
                status, out, headers = self._route(verb, url.path, query, body)
        except ArmError as exc:
            status, out = exc.status, {"error": {"code": exc.code, "message": exc.message}}
        except (ValueError, KeyError, TypeError) as exc:
            status, out = 400, {"error": {"code": "InvalidRequestContent", "message": f"Invalid request: {exc}"}}
        data = b"" if out is None else json.dumps(out).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if data:
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(
        self, verb: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if m := _OPERATION.match(path):
            if verb != "GET" or m.group(3) not in self.operations:
                raise ArmError(404, "NotFound", f"The operation {m.group(3)} was not found.")
            if query.get("monitor") == "true":
                return 200, None, {}
            return 200, {"name": m.group(3), "status": "Succeeded", "startTime": _now(), "endTime": _now()}, {}
        m = _VM.match(path)
        if not m:
            raise ArmError(404, "NotFound", f"No route for {path}")
        subscription, group, name, method = m.groups()
        key = (subscription.lower(), group.lower(), name.lower())
        vm = self.vms.get(key)
        if verb == "PUT" and method is None:
            if vm is None:
                raise ArmError(400, "InvalidParameter", "Creating virtual machines is not supported by this fake.")
            self.calls.append(("createOrUpdate", name))
            self._set_data_disks(vm, body["properties"]["storageProfile"].get("dataDisks") or [])
            return 200, self._view(key, False), self._lro(subscription)
        if vm is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{group}' "
                "was not found.",
            )
        if verb == "GET" and method is None:
            return 200, self._view(key, query.get("$expand", "").lower() == "instanceview"), {}
        if verb == "GET" and method.lower() == "instanceview":
            return 200, self._instance_view(key), {}
        if verb != "POST" or method is None:
            raise ArmError(405, "MethodNotAllowed", f"{verb} {path} is not allowed")
        verb_name = method.lower()
        self.calls.append((method, name))
        if verb_name == "poweroff":
            if self.power[key] != "deallocated":
                self.power[key] = "stopped"
        elif verb_name == "deallocate":
            self.power[key] = "deallocated"
        elif verb_name == "start":
            self.power[key] = "running"
        elif verb_name == "restart":
            if self.power[key] != "running":
                raise ArmError(409, "OperationNotAllowed", f"Cannot restart the VM {name} because it is not running.")
        else:
            raise ArmError(400, "InvalidRequest", f"Unsupported action {method}")
        return 202, None, self._lro(subscription)

    def _lro(self, subscription: str) -> dict[str, str]:
        op = str(uuid.UUID(int=next(self._ids)))
        self.operations.add(op)
        base = f"{self.endpoint}/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{self.location}"
        return {
            "Azure-AsyncOperation": f"{base}/operations/{op}?api-version=2024-07-01",
            "Location": f"{base}/operations/{op}?monitor=true&api-version=2024-07-01",
            "Retry-After": "0",
        }

    def _set_data_disks(self, vm: dict[str, Any], wanted: list[dict[str, Any]]) -> None:
        wanted = [d for d in wanted if not d.get("toBeDetached")]
        luns = [d["lun"] for d in wanted]
        if len(luns) != len(set(luns)):
            raise ArmError(400, "InvalidParameter", "Data disk LUNs must be unique.")
        disks = []
        for spec in wanted:
            disk_id = (spec.get("managedDisk") or {}).get("id", "")
            disk = self.disks.get(disk_id.lower())
            if disk is None:
                raise ArmError(404, "NotFound", f"Disk {disk_id or spec.get('name')} was not found.")
            if disk["managedBy"] and disk["managedBy"].lower() != vm["id"].lower():
                raise ArmError(409, "Conflict", f"Disk {disk['name']} is attached to VM {disk['managedBy']}.")
            disks.append(
                {
                    "lun": spec["lun"],
                    "name": disk["name"],
                    "createOption": "Attach",
                    "caching": spec.get("caching") or "None",
                    "writeAcceleratorEnabled": bool(spec.get("writeAcceleratorEnabled", False)),
                    "managedDisk": {"id": disk["id"], "storageAccountType": "Premium_LRS"},
                    "deleteOption": spec.get("deleteOption") or "Detach",
                    "diskSizeGB": 32,
                    "toBeDetached": False,
                }
            )
        for disk in self.disks.values():
            if disk["managedBy"] and disk["managedBy"].lower() == vm["id"].lower() and not disk["name"].endswith("-os"):
                disk["managedBy"] = None
        for spec in disks:
            self.disks[spec["managedDisk"]["id"].lower()]["managedBy"] = vm["id"]
        vm["properties"]["storageProfile"]["dataDisks"] = disks

    def _instance_view(self, key: tuple[str, str, str]) -> dict[str, Any]:
        power = self.power[key]
        return {
            "statuses": [
                {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
                {"code": f"PowerState/{power}", "level": "Info", "displayStatus": POWER[power]},
            ]
        }

    def _view(self, key: tuple[str, str, str], expand: bool) -> dict[str, Any]:
        vm = json.loads(json.dumps(self.vms[key]))
        if expand:
            vm["properties"]["instanceView"] = self._instance_view(key)
        return vm


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
