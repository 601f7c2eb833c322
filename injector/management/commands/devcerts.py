"""python manage.py devcerts OUT_DIR [--force]

A development CA, a server certificate for localhost and 127.0.0.1, and an agent client certificate,
for running the gateway with (mutual) TLS locally and in tests. Never for production.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.management.base import BaseCommand, CommandError

VALID_DAYS = 365


@dataclass(frozen=True)
class DevCerts:
    ca: Path
    server_cert: Path
    server_key: Path
    agent_cert: Path
    agent_key: Path


def write_dev_certs(out_dir: Path, *, force: bool = False) -> DevCerts:
    out_dir = Path(out_dir)
    paths = DevCerts(*(out_dir / n for n in ("ca.pem", "server.pem", "server-key.pem", "agent.pem", "agent-key.pem")))
    if not force and any(p.exists() for p in vars(paths).values()):
        raise FileExistsError(f"certificates already exist in {out_dir} (use --force to replace them)")
    out_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Chaosplane development CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _leaf(
        "localhost", server_key, ca_name, ca_key, ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    agent_key = ec.generate_private_key(ec.SECP256R1())
    agent_cert = _leaf("chaosplane-agent", agent_key, ca_name, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    _write(paths.ca, _pem(ca_cert), 0o644)
    _write(paths.server_cert, _pem(server_cert), 0o644)
    _write(paths.server_key, _key_pem(server_key), 0o600)
    _write(paths.agent_cert, _pem(agent_cert), 0o644)
    _write(paths.agent_key, _key_pem(agent_key), 0o600)
    # The CA key is not kept: nothing should be signed with it later, and it cannot leak.
    return paths


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Chaosplane dev"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _usage(cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


def _leaf(
    common_name: str, key: Any, ca_name: x509.Name, ca_key: Any, usage: x509.ObjectIdentifier, sans: list[Any]
) -> x509.Certificate:
    builder = (
        _builder(_name(common_name), ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    # Created with its final mode, so a key is never readable by others, not even for a moment.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it; certificates stay world-readable


class Command(BaseCommand):
    help = "Write a development CA, a localhost server certificate and an agent client certificate."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--force", action="store_true", help="replace existing files")

    def handle(self, *args: Any, out_dir: Path, force: bool, **options: Any) -> None:
        try:
            paths = write_dev_certs(out_dir, force=force)
        except FileExistsError as error:
            raise CommandError(str(error)) from None
        for label, path in vars(paths).items():
            self.stdout.write(f"{label}: {path}")
        self.stdout.write(
            f"run: manage.py agentgateway --cert {paths.server_cert} --key {paths.server_key} --client-ca {paths.ca}"
        )
