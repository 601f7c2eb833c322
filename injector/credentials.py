"""What each kind of environment needs to be reached, split in two:

- `settings`: not secret (an API URL, a region, a project); stored plain and shown by the API;
- `secrets`: credentials; stored encrypted (injector.secrets) and never shown again.

`validate()` checks both and returns them cleaned (defaults filled in, values normalised), or raises
ValidationError keyed `settings.<field>` / `secrets.<field>`; `connection()` turns them into the
driver's connection object. No message ever repeats a value: a secret pasted into the wrong field
must not end up in a response or a log.

A Kubernetes kubeconfig is reduced to what the driver uses: its user's token goes to `secrets.token`,
its server and CA to `settings.api_url` / `settings.ca_cert_pem` unless those are given; the kubeconfig
itself is not kept. Users that authenticate with exec plugins, auth providers, client certificates or
passwords are refused: the control plane runs none of those.

AWS `role_arn` is kept in settings for the driver to assume later; `connection()` does not assume it,
so until the driver does, the access keys' own permissions apply.
"""
from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from django.core.exceptions import ValidationError

from injector.drivers.aws import AWSConnection
from injector.drivers.azure import AzureConnection
from injector.drivers.gcp import GCPConnection
from injector.drivers.kubernetes import KubeConnection

KINDS = ("kubernetes", "hosts", "aws", "gcp", "azure")
SETTING_FIELDS: dict[str, tuple[str, ...]] = {
    "kubernetes": ("api_url", "ca_cert_pem", "verify", "scope", "namespaces", "agent_image"),
    "hosts": (),
    "aws": ("region", "endpoint_url", "role_arn"),
    "gcp": ("project", "zone", "api_endpoint"),
    "azure": ("subscription_id", "resource_group", "base_url", "authority_host", "stop_mode"),
}
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "kubernetes": ("token", "kubeconfig"),
    "hosts": (),
    "aws": ("access_key_id", "secret_access_key", "session_token"),
    "gcp": ("service_account_key",),
    "azure": ("tenant_id", "client_id", "client_secret"),
}
DEFAULT_AGENT_IMAGE = "ghcr.io/chaosplane/nodeagent:latest"
SCOPES = ("namespace", "cluster")
STOP_MODES = ("power-off", "deallocate")

CERT_MARK = "-----BEGIN CERTIFICATE-----"
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # RFC 1123 label: a namespace name
_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*$")
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,510}$")
BEARER = re.compile(r"^[\x21-\x7e]{1,8192}$")  # it goes into an Authorization header
AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
AWS_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
AWS_KEY_ID = re.compile(r"^\w{1,128}$")
GCP_PROJECT = re.compile(r"^([a-z0-9.-]+\.[a-z]{2,}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
GCP_ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
AZURE_RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
REFUSED_KUBE_AUTH = {
    "exec": "an exec plugin",
    "auth-provider": "an auth provider",
    "client-certificate": "a client certificate",
    "client-certificate-data": "a client certificate",
    "client-key": "a client certificate",
    "client-key-data": "a client certificate",
    "username": "a user name and password",
    "password": "a user name and password",
    "tokenFile": "a token file",
}


class _Errors:
    """Collects messages keyed `settings.<field>` / `secrets.<field>`."""

    def __init__(self) -> None:
        self.messages: dict[str, list[str]] = {}

    def add(self, key: str, message: str) -> None:
        self.messages.setdefault(key, []).append(message)

    def raise_any(self) -> None:
        if self.messages:
            raise ValidationError(self.messages)


def _given(data: dict[str, Any], name: str) -> bool:
    return data.get(name) not in (None, "")


def _url(value: Any) -> str | None:
    """The URL, or None unless it is http(s)://host[:port][/path] without user info."""
    if not isinstance(value, str) or value != value.strip() or any(c.isspace() for c in value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return value


def _pem_certificates(text: Any) -> str | None:
    """The PEM text if it holds one or more certificates (and no private key), else None."""
    if not isinstance(text, str) or CERT_MARK not in text or "PRIVATE KEY" in text:
        return None
    try:
        x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        return None
    return text.strip() + "\n"


def _secret_text(errors: _Errors, secrets: dict[str, Any], name: str, *, required: bool) -> str | None:
    if not _given(secrets, name):
        if required:
            errors.add(f"secrets.{name}", "required")
        return None
    value = secrets[name]
    if not isinstance(value, str) or not value.strip():
        errors.add(f"secrets.{name}", "must be a non-empty string")
        return None
    return value.strip()


def _uuid(errors: _Errors, key: str, value: Any) -> str | None:
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        pass
    errors.add(key, "must be a UUID (like 00000000-0000-0000-0000-000000000000)")
    return None


# -- kubernetes


def _kubernetes(errors: _Errors, given: dict[str, Any], secrets: dict[str, Any], check_secrets: bool):
    settings: dict[str, Any] = {}
    clean_secrets: dict[str, Any] = {}
    from_kubeconfig: dict[str, Any] = {}
    has_kubeconfig = check_secrets and _given(secrets, "kubeconfig")

    if check_secrets:
        has_token = _given(secrets, "token")
        if has_token and has_kubeconfig:
            errors.add("secrets.kubeconfig", "give either token or kubeconfig, not both")
        elif has_kubeconfig:
            from_kubeconfig = _kubeconfig(errors, secrets["kubeconfig"])
            if "token" in from_kubeconfig:
                clean_secrets["token"] = from_kubeconfig.pop("token")
        elif has_token:
            token = _secret_text(errors, secrets, "token", required=True)
            if token is not None and not BEARER.match(token):
                errors.add("secrets.token", "must be a bearer token (printable characters, no spaces)")
            elif token is not None:
                clean_secrets["token"] = token
        else:
            errors.add("secrets.token", "required: a service-account token (or give a kubeconfig instead)")

    if _given(given, "api_url"):
        if _url(given["api_url"]) is None:
            errors.add("settings.api_url", "must be an https:// or http:// URL")
        else:
            settings["api_url"] = given["api_url"].rstrip("/")
    elif "api_url" in from_kubeconfig:
        settings["api_url"] = from_kubeconfig["api_url"]
    elif not has_kubeconfig or not errors.messages.get("secrets.kubeconfig"):  # a bad kubeconfig says enough
        errors.add("settings.api_url", "required: the cluster's API server URL (or give a kubeconfig)")

    if _given(given, "ca_cert_pem"):
        pem = _pem_certificates(given["ca_cert_pem"])
        if pem is None:
            errors.add("settings.ca_cert_pem", f"must be PEM certificate text (starting {CERT_MARK}), no private key")
        else:
            settings["ca_cert_pem"] = pem
    elif "ca_cert_pem" in from_kubeconfig:
        settings["ca_cert_pem"] = from_kubeconfig["ca_cert_pem"]

    verify = given.get("verify")
    if verify is None:
        settings["verify"] = from_kubeconfig.get("verify", True)
    elif isinstance(verify, bool):
        settings["verify"] = verify
    else:
        errors.add("settings.verify", "must be true or false")

    scope = given.get("scope") or "namespace"
    if scope not in SCOPES:
        errors.add("settings.scope", "must be namespace or cluster")
    settings["scope"] = scope

    namespaces = given.get("namespaces")
    if namespaces in (None, ""):
        namespaces = []
    if not isinstance(namespaces, (list, tuple)):
        errors.add("settings.namespaces", "must be a list of namespace names")
    else:
        bad = [i for i, ns in enumerate(namespaces) if not isinstance(ns, str) or not DNS_LABEL.match(ns)]
        for i in bad:
            errors.add(
                "settings.namespaces",
                f"item {i + 1} is not a namespace name (lowercase letters, digits and '-', up to 63 characters)",
            )
        if not namespaces and scope == "namespace":
            errors.add("settings.namespaces", "required with scope namespace: the namespaces Chaosplane may act in")
        settings["namespaces"] = list(dict.fromkeys(namespaces)) if not bad else []

    image = given.get("agent_image") or DEFAULT_AGENT_IMAGE
    if not isinstance(image, str) or not IMAGE.match(image):
        errors.add("settings.agent_image", "must be a container image reference (like ghcr.io/org/image:tag)")
    settings["agent_image"] = image
    return settings, clean_secrets


def _kubeconfig(errors: _Errors, text: Any) -> dict[str, Any]:
    """api_url, ca_cert_pem, verify and token from the current context of a kubeconfig."""
    def refuse(message: str) -> dict[str, Any]:
        errors.add("secrets.kubeconfig", message)
        return {}

    if not isinstance(text, str):
        return refuse("must be the kubeconfig file's text")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:  # its message quotes the text: never shown
        mark = getattr(error, "problem_mark", None)
        return refuse(f"is not YAML (line {mark.line + 1})" if mark is not None else "is not YAML")
    if not isinstance(config, dict):
        return refuse("is not a kubeconfig (a YAML mapping with clusters, users and contexts)")

    def named(section: str, name: Any) -> dict[str, Any] | None:
        for item in config.get(section) or ():
            if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(section[:-1]), dict):
                return item[section[:-1]]
        return None

    contexts = [c for c in config.get("contexts") or () if isinstance(c, dict)]
    current = config.get("current-context")
    if not current and len(contexts) == 1:
        current = contexts[0].get("name")
    context = named("contexts", current) if current else None
    if context is None:
        return refuse("has no current-context naming one of its contexts")
    cluster, user = named("clusters", context.get("cluster")), named("users", context.get("user"))
    if cluster is None:
        return refuse("the current context's cluster is not among its clusters")
    if user is None:
        return refuse("the current context's user is not among its users")

    refused = sorted({how for key, how in REFUSED_KUBE_AUTH.items() if user.get(key)})
    if refused:
        return refuse(
            f"its user authenticates with {' and '.join(refused)}, which Chaosplane cannot use: "
            "give a kubeconfig whose user has a service-account token, or the token itself"
        )
    out: dict[str, Any] = {}
    token = user.get("token")
    if not isinstance(token, str) or not BEARER.match(token.strip()):
        return refuse("its user has no token: give a kubeconfig whose user has a service-account token")
    out["token"] = token.strip()

    server = cluster.get("server")
    if server is not None:
        if _url(server) is None:
            return refuse("its cluster's server is not an https:// or http:// URL")
        out["api_url"] = server.rstrip("/")
    if cluster.get("certificate-authority"):
        return refuse("its cluster's certificate-authority is a file path: embed it as certificate-authority-data")
    ca_data = cluster.get("certificate-authority-data")
    if ca_data:
        try:
            pem = _pem_certificates(base64.b64decode(str(ca_data), validate=True).decode("ascii"))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pem = None
        if pem is None:
            return refuse("its cluster's certificate-authority-data is not base64 of a PEM certificate")
        out["ca_cert_pem"] = pem
    if cluster.get("insecure-skip-tls-verify") is True:
        out["verify"] = False
    return out


# -- hosts


def _hosts(errors: _Errors, given: dict[str, Any], secrets: dict[str, Any], check_secrets: bool):
    return {}, {}  # unknown fields are reported by validate(); every field is unknown here


# -- aws


def _aws(errors: _Errors, given: dict[str, Any], secrets: dict[str, Any], check_secrets: bool):
    settings: dict[str, Any] = {}
    region = given.get("region")
    if not _given(given, "region"):
        errors.add("settings.region", "required (like us-east-1)")
    elif not isinstance(region, str) or not AWS_REGION.match(region):
        errors.add("settings.region", "must be an AWS region (like us-east-1)")
    else:
        settings["region"] = region
    if _given(given, "endpoint_url"):
        if _url(given["endpoint_url"]) is None:
            errors.add("settings.endpoint_url", "must be an https:// or http:// URL")
        else:
            settings["endpoint_url"] = given["endpoint_url"]
    if _given(given, "role_arn"):
        role_arn = given["role_arn"]
        if not isinstance(role_arn, str) or not AWS_ROLE_ARN.match(role_arn):
            errors.add("settings.role_arn", "must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)")
        else:
            settings["role_arn"] = role_arn

    clean: dict[str, Any] = {}
    if check_secrets:
        # Both keys are required: a tenant must never fall back to the control plane's own AWS identity.
        key_id = _secret_text(errors, secrets, "access_key_id", required=True)
        if key_id is not None and not AWS_KEY_ID.match(key_id):
            errors.add("secrets.access_key_id", "must be an access key id (letters and digits, like AKIA...)")
        elif key_id is not None:
            clean["access_key_id"] = key_id
        secret = _secret_text(errors, secrets, "secret_access_key", required=True)
        if secret is not None:
            clean["secret_access_key"] = secret
        session = _secret_text(errors, secrets, "session_token", required=False)
        if session is not None:
            clean["session_token"] = session
    return settings, clean


# -- gcp


def _gcp(errors: _Errors, given: dict[str, Any], secrets: dict[str, Any], check_secrets: bool):
    settings: dict[str, Any] = {}
    for name, pattern, example in (("project", GCP_PROJECT, "my-project-123"), ("zone", GCP_ZONE, "us-central1-a")):
        value = given.get(name)
        if not _given(given, name):
            errors.add(f"settings.{name}", f"required (like {example})")
        elif not isinstance(value, str) or not pattern.match(value):
            what = "a GCP project id" if name == "project" else "a GCP zone"
            errors.add(f"settings.{name}", f"must be {what} (like {example})")
        else:
            settings[name] = value
    if _given(given, "api_endpoint"):
        if _url(given["api_endpoint"]) is None:
            errors.add("settings.api_endpoint", "must be an https:// or http:// URL")
        else:
            settings["api_endpoint"] = given["api_endpoint"]

    clean: dict[str, Any] = {}
    if check_secrets:
        key = _service_account_key(errors, secrets.get("service_account_key"))
        if key is not None:
            clean["service_account_key"] = key
    return settings, clean


def _service_account_key(errors: _Errors, value: Any) -> dict[str, Any] | None:
    field = "secrets.service_account_key"
    if value in (None, ""):
        errors.add(field, "required: the service account's JSON key")
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:  # its message may quote the text: never shown
            errors.add(field, "is not JSON: give the key file's contents as they are")
            return None
    if not isinstance(value, dict):
        errors.add(field, "must be a JSON object (the key file of a service account)")
        return None
    if value.get("type") != "service_account":
        errors.add(field, 'is not a service account key (its "type" must be "service_account")')
        return None
    missing = [k for k in ("client_email", "private_key") if not isinstance(value.get(k), str) or not value[k]]
    if missing:
        errors.add(field, f"lacks {' and '.join(missing)}")
        return None
    return value


# -- azure


def _azure(errors: _Errors, given: dict[str, Any], secrets: dict[str, Any], check_secrets: bool):
    settings: dict[str, Any] = {}
    if not _given(given, "subscription_id"):
        errors.add("settings.subscription_id", "required (a UUID)")
    else:
        subscription = _uuid(errors, "settings.subscription_id", given["subscription_id"])
        if subscription is not None:
            settings["subscription_id"] = subscription
    group = given.get("resource_group")
    if not _given(given, "resource_group"):
        errors.add("settings.resource_group", "required")
    elif not isinstance(group, str) or not AZURE_RESOURCE_GROUP.match(group):
        errors.add(
            "settings.resource_group",
            "must be 1 to 90 letters, digits, '_', '-', '.', '(' or ')', not ending with '.'",
        )
    else:
        settings["resource_group"] = group
    if _given(given, "base_url"):
        if _url(given["base_url"]) is None:
            errors.add("settings.base_url", "must be an https:// or http:// URL")
        else:
            settings["base_url"] = given["base_url"].rstrip("/")
    if _given(given, "authority_host"):
        host = given["authority_host"]
        if not isinstance(host, str) or not (HOSTNAME.match(host) or (_url(host) and host.startswith("https://"))):
            errors.add("settings.authority_host", "must be a host name (like login.microsoftonline.us) or https:// URL")
        else:
            settings["authority_host"] = host
    stop_mode = given.get("stop_mode") or "power-off"
    if stop_mode not in STOP_MODES:
        errors.add("settings.stop_mode", "must be power-off or deallocate")
    settings["stop_mode"] = stop_mode

    clean: dict[str, Any] = {}
    if check_secrets:
        for name in ("tenant_id", "client_id"):
            if not _given(secrets, name):
                errors.add(f"secrets.{name}", "required (a UUID)")
                continue
            value = _uuid(errors, f"secrets.{name}", secrets[name])
            if value is not None:
                clean[name] = value
        client_secret = _secret_text(errors, secrets, "client_secret", required=True)
        if client_secret is not None:
            clean["client_secret"] = client_secret
    return settings, clean


Cleaner = Callable[[_Errors, dict[str, Any], dict[str, Any], bool], tuple[dict[str, Any], dict[str, Any]]]
CLEANERS: dict[str, Cleaner] = {"kubernetes": _kubernetes, "hosts": _hosts, "aws": _aws, "gcp": _gcp, "azure": _azure}


def validate(
    kind: str, settings: dict[str, Any], secrets: dict[str, Any], *, partial_secrets: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cleaned (settings, secrets) for an environment of `kind`, or ValidationError naming each bad field.

    With `partial_secrets` (an update that keeps the stored secrets) an empty `secrets` is accepted and
    returned as {}; secrets that are given are checked in full, as a replacement.
    """
    if not isinstance(kind, str) or kind not in CLEANERS:
        raise ValidationError({"kind": [f"must be one of: {', '.join(KINDS)}"]})
    errors = _Errors()
    settings = {} if settings is None else settings
    secrets = {} if secrets is None else secrets
    for part, data in (("settings", settings), ("secrets", secrets)):
        if not isinstance(data, dict):
            errors.add(part, "must be an object")
    errors.raise_any()

    for part, data, known in (("settings", settings, SETTING_FIELDS[kind]), ("secrets", secrets, SECRET_FIELDS[kind])):
        for name in data:
            if name not in known:
                expected = f"one of: {', '.join(known)}" if known else f"a {kind} environment has no {part}"
                errors.add(f"{part}.{name}", f"unknown field ({expected})")
    check_secrets = not (partial_secrets and not secrets)
    clean_settings, clean_secrets = CLEANERS[kind](errors, settings, secrets, check_secrets)
    errors.raise_any()
    return clean_settings, clean_secrets


def connection(kind: str, settings: dict[str, Any], secrets: dict[str, Any]) -> Any:
    """The driver connection (KubeConnection, AWSConnection, GCPConnection, AzureConnection) of an environment.

    The input is validated again, so stored and freshly entered credentials are both fine.
    """
    if kind == "hosts":
        raise ValueError("a hosts environment has no connection: its node agents dial in to the gateway")
    s, k = validate(kind, settings, secrets)
    if kind == "kubernetes":
        return KubeConnection(
            api_url=s["api_url"], token=k["token"], ca_cert_pem=s.get("ca_cert_pem"), verify=s["verify"]
        )
    if kind == "aws":
        return AWSConnection(
            region=s["region"],
            access_key_id=k["access_key_id"],
            secret_access_key=k["secret_access_key"],
            session_token=k.get("session_token"),
            endpoint_url=s.get("endpoint_url"),
        )
    if kind == "gcp":
        return GCPConnection(
            project=s["project"],
            zone=s["zone"],
            service_account_info=k["service_account_key"],
            api_endpoint=s.get("api_endpoint"),
        )
    optional = {name: s[name] for name in ("base_url", "authority_host") if name in s}
    return AzureConnection(
        subscription_id=s["subscription_id"],
        resource_group=s["resource_group"],
        tenant_id=k["tenant_id"],
        client_id=k["client_id"],
        client_secret=k["client_secret"],
        stop_mode=s["stop_mode"],
        **optional,
    )


def public_view(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What the API may show of an environment's settings (a copy of its known setting fields)."""
    if kind not in SETTING_FIELDS:
        raise ValueError(f"unknown environment kind {kind!r}; one of: {', '.join(KINDS)}")
    return {name: copy.deepcopy(value) for name, value in (settings or {}).items() if name in SETTING_FIELDS[kind]}
