"""Environment credentials: encryption at rest (injector.secrets), and what each kind of environment
needs, validated and turned into its driver's connection (injector.credentials). Pure: no database.
"""
from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ImproperlyConfigured, ValidationError

from injector import credentials, secrets
from injector.credentials import connection, public_view, validate
from injector.drivers.aws import AWSConnection
from injector.drivers.azure import ARM, AzureConnection
from injector.drivers.gcp import GCPConnection
from injector.drivers.kubernetes import KubeConnection

SECRET = "s3cr3t-Value-that-must-never-show"  # every secret in these tests contains it
TENANT_ID, CLIENT_ID = "5f2b7c1e-0000-4000-8000-00000000000a", "5f2b7c1e-0000-4000-8000-00000000000b"
SUBSCRIPTION = "0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f"


def make_ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-cluster-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CA_PEM = make_ca_pem()
SA_KEY = {
    "type": "service_account",
    "project_id": "shop-project",
    "client_email": "chaos@shop-project.iam.gserviceaccount.com",
    "private_key": f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----\n",
}


def valid(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid (settings, secrets) of each kind."""
    return {
        "kubernetes": ({"api_url": "https://k8s.example.com:6443", "namespaces": ["shop"]}, {"token": SECRET}),
        "hosts": ({}, {}),
        "aws": ({"region": "us-east-1"}, {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET}),
        "gcp": ({"project": "shop-project", "zone": "us-central1-a"}, {"service_account_key": json.dumps(SA_KEY)}),
        "azure": (
            {"subscription_id": SUBSCRIPTION, "resource_group": "shop-rg"},
            {"tenant_id": TENANT_ID, "client_id": CLIENT_ID, "client_secret": SECRET},
        ),
    }[kind]


def errors_of(kind: str, settings: dict[str, Any], secret_values: dict[str, Any], **kw: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        validate(kind, settings, secret_values, **kw)
    return caught.value.message_dict


def kubeconfig(user: dict[str, Any], *, server: str | None = "https://kube.example.com:6443",
               ca: str | None = CA_PEM, insecure: bool = False) -> str:
    cluster: dict[str, Any] = {}
    if server:
        cluster["server"] = server
    if ca:
        cluster["certificate-authority-data"] = base64.b64encode(ca.encode()).decode()
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "chaos",
        "clusters": [{"name": "other", "cluster": {"server": "https://wrong.example.com"}},
                     {"name": "prod", "cluster": cluster}],
        "users": [{"name": "other", "user": {"token": "wrong-token"}}, {"name": "chaos-sa", "user": user}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}},
                     {"name": "chaos", "context": {"cluster": "prod", "user": "chaos-sa"}}],
    })


# -- encryption at rest


def test_encrypted_credentials_decrypt_to_what_was_encrypted() -> None:
    data = {"token": SECRET, "nested": {"list": [1, 2]}}
    token = secrets.encrypt(data)
    assert isinstance(token, str)
    assert secrets.decrypt(token) == data


def test_the_ciphertext_does_not_contain_the_plaintext() -> None:
    token = secrets.encrypt({"token": SECRET})
    assert SECRET not in token
    assert SECRET.encode() not in base64.urlsafe_b64decode(token)


def test_a_tampered_token_is_refused_without_echoing_it() -> None:
    token = secrets.encrypt({"token": SECRET})
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:]
    with pytest.raises(secrets.SecretsError) as caught:
        secrets.decrypt(tampered)
    assert str(caught.value) == "environment credentials cannot be decrypted: the encryption key changed?"
    assert tampered not in str(caught.value)


def test_without_configured_keys_the_key_is_derived_from_secret_key(settings: Any) -> None:
    settings.CHAOSPLANE_ENCRYPTION_KEYS = None
    settings.SECRET_KEY = "first-secret-key"
    token = secrets.encrypt({"a": 1})
    assert json.loads(Fernet(secrets.derived_key("first-secret-key")).decrypt(token)) == {"a": 1}
    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(secrets.SecretsError):
        secrets.decrypt(token)


def test_keys_rotate_first_key_encrypts_every_key_decrypts(settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CHAOSPLANE_ENCRYPTION_KEYS = [old]
    under_old = secrets.encrypt({"token": SECRET})

    settings.CHAOSPLANE_ENCRYPTION_KEYS = [new, old]
    assert secrets.decrypt(under_old) == {"token": SECRET}
    under_new = secrets.rotate(under_old)
    assert Fernet(new).decrypt(under_new)  # re-encrypted with the first key

    settings.CHAOSPLANE_ENCRYPTION_KEYS = [new]
    assert secrets.decrypt(under_new) == {"token": SECRET}
    with pytest.raises(secrets.SecretsError):
        secrets.decrypt(under_old)
    with pytest.raises(secrets.SecretsError):
        secrets.rotate(under_old)


def test_a_malformed_configured_key_names_the_setting_not_the_key(settings: Any) -> None:
    settings.CHAOSPLANE_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match=r"CHAOSPLANE_ENCRYPTION_KEYS\[1\]") as caught:
        secrets.encrypt({})
    assert "not-a-fernet-key" not in str(caught.value)


# -- valid input, cleaned


@pytest.mark.parametrize("kind", credentials.KINDS)
def test_each_kind_accepts_its_valid_credentials(kind: str) -> None:
    settings, secret_values = valid(kind)
    clean_settings, clean_secrets = validate(kind, settings, secret_values)
    assert {k: v for k, v in clean_settings.items() if k in settings} == settings
    assert set(clean_secrets) <= set(credentials.SECRET_FIELDS[kind])


def test_kubernetes_defaults_are_filled_in() -> None:
    clean, _ = validate("kubernetes", *valid("kubernetes"))
    assert clean == {
        "api_url": "https://k8s.example.com:6443",
        "verify": True,
        "scope": "namespace",
        "namespaces": ["shop"],
        "agent_image": "ghcr.io/chaosplane/nodeagent:latest",
    }


def test_cluster_scope_needs_no_namespaces() -> None:
    clean, _ = validate("kubernetes", {"api_url": "https://k8s.example.com", "scope": "cluster"}, {"token": "t"})
    assert clean["scope"] == "cluster" and clean["namespaces"] == []


def test_a_ca_certificate_is_kept() -> None:
    clean, _ = validate("kubernetes", {**valid("kubernetes")[0], "ca_cert_pem": CA_PEM}, {"token": "t"})
    assert clean["ca_cert_pem"].strip() == CA_PEM.strip()


def test_gcp_key_as_a_dict_is_accepted() -> None:
    _, clean = validate("gcp", valid("gcp")[0], {"service_account_key": SA_KEY})
    assert clean == {"service_account_key": SA_KEY}


def test_azure_uuids_are_normalised_and_stop_mode_defaults_to_power_off() -> None:
    settings = {"subscription_id": SUBSCRIPTION.upper(), "resource_group": "shop-rg"}
    clean, clean_secrets = validate("azure", settings, valid("azure")[1])
    assert clean == {"subscription_id": SUBSCRIPTION, "resource_group": "shop-rg", "stop_mode": "power-off"}
    assert clean_secrets["tenant_id"] == TENANT_ID


def test_aws_localstack_style_settings_are_accepted() -> None:
    settings = {"region": "us-gov-west-1", "endpoint_url": "http://localhost:4566",
                "role_arn": "arn:aws:iam::123456789012:role/chaos/ChaosRunner"}
    clean, clean_secrets = validate("aws", settings, {"access_key_id": "test", "secret_access_key": "test",
                                                      "session_token": SECRET})
    assert clean == settings
    assert clean_secrets["session_token"] == SECRET


# -- invalid input, each error naming its field

INVALID = [
    ("kubernetes", {"namespaces": ["shop"]}, {"token": "t"}, "settings.api_url", "required"),
    ("kubernetes", {"api_url": "ftp://k8s", "namespaces": ["shop"]}, {"token": "t"}, "settings.api_url",
     "must be an https:// or http:// URL"),
    ("kubernetes", {"api_url": "https://user:pw@k8s.example.com", "namespaces": ["a"]}, {"token": "t"},
     "settings.api_url", "URL"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["shop"], "ca_cert_pem": "hello"}, {"token": "t"},
     "settings.ca_cert_pem", "PEM certificate"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["shop"],
                    "ca_cert_pem": CA_PEM + "-----BEGIN PRIVATE KEY-----\nx\n"}, {"token": "t"},
     "settings.ca_cert_pem", "no private key"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["shop"], "verify": "yes"}, {"token": "t"},
     "settings.verify", "true or false"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["shop"], "scope": "world"}, {"token": "t"},
     "settings.scope", "namespace or cluster"),
    ("kubernetes", {"api_url": "https://k8s"}, {"token": "t"}, "settings.namespaces", "required with scope namespace"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["shop", "Bad_Name"]}, {"token": "t"},
     "settings.namespaces", "item 2 is not a namespace name"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": "shop"}, {"token": "t"}, "settings.namespaces",
     "must be a list"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["a"], "agent_image": "bad image"}, {"token": "t"},
     "settings.agent_image", "image reference"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["a"]}, {}, "secrets.token", "required"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["a"]}, {"token": "has space"}, "secrets.token",
     "bearer token"),
    ("kubernetes", {"api_url": "https://k8s", "namespaces": ["a"]}, {"token": "t", "kubeconfig": "x: 1"},
     "secrets.kubeconfig", "not both"),
    ("hosts", {"labels": {}}, {}, "settings.labels", "a hosts environment has no settings"),
    ("hosts", {}, {"token": "t"}, "secrets.token", "a hosts environment has no secrets"),
    ("aws", {}, {"access_key_id": "AKIA1", "secret_access_key": "s"}, "settings.region", "required"),
    ("aws", {"region": "US-EAST"}, {"access_key_id": "AKIA1", "secret_access_key": "s"}, "settings.region",
     "AWS region"),
    ("aws", {"region": "us-east-1", "endpoint_url": "localhost:4566"}, {"access_key_id": "A", "secret_access_key": "s"},
     "settings.endpoint_url", "URL"),
    ("aws", {"region": "us-east-1", "role_arn": "arn:aws:iam::123:role/x"},
     {"access_key_id": "A", "secret_access_key": "s"}, "settings.role_arn", "IAM role ARN"),
    ("aws", {"region": "us-east-1"}, {"access_key_id": "AKIA1"}, "secrets.secret_access_key", "required"),
    ("aws", {"region": "us-east-1"}, {"secret_access_key": "s"}, "secrets.access_key_id", "required"),
    ("aws", {"region": "us-east-1"}, {"access_key_id": "AKIA1", "secret_access_key": "s", "region": "x"},
     "secrets.region", "unknown field"),
    ("gcp", {"zone": "us-central1-a"}, {"service_account_key": SA_KEY}, "settings.project", "required"),
    ("gcp", {"project": "Shop", "zone": "us-central1-a"}, {"service_account_key": SA_KEY}, "settings.project",
     "GCP project id"),
    ("gcp", {"project": "shop-project", "zone": "us-central1"}, {"service_account_key": SA_KEY}, "settings.zone",
     "GCP zone"),
    ("gcp", {"project": "shop-project", "zone": "us-central1-a", "api_endpoint": "nope"},
     {"service_account_key": SA_KEY}, "settings.api_endpoint", "URL"),
    ("gcp", {"project": "shop-project", "zone": "us-central1-a"}, {}, "secrets.service_account_key", "required"),
    ("gcp", {"project": "shop-project", "zone": "us-central1-a"}, {"service_account_key": "{not json"},
     "secrets.service_account_key", "is not JSON"),
    ("gcp", {"project": "shop-project", "zone": "us-central1-a"},
     {"service_account_key": {**SA_KEY, "type": "authorized_user"}}, "secrets.service_account_key",
     "not a service account key"),
    ("gcp", {"project": "shop-project", "zone": "us-central1-a"},
     {"service_account_key": {"type": "service_account", "client_email": "a@b"}}, "secrets.service_account_key",
     "lacks private_key"),
    ("azure", {"resource_group": "rg"}, valid("azure")[1], "settings.subscription_id", "required"),
    ("azure", {"subscription_id": "sub-1", "resource_group": "rg"}, valid("azure")[1], "settings.subscription_id",
     "UUID"),
    ("azure", {"subscription_id": SUBSCRIPTION}, valid("azure")[1], "settings.resource_group", "required"),
    ("azure", {"subscription_id": SUBSCRIPTION, "resource_group": "rg."}, valid("azure")[1],
     "settings.resource_group", "not ending with '.'"),
    ("azure", {"subscription_id": SUBSCRIPTION, "resource_group": "r" * 91}, valid("azure")[1],
     "settings.resource_group", "1 to 90"),
    ("azure", {"subscription_id": SUBSCRIPTION, "resource_group": "rg", "stop_mode": "halt"}, valid("azure")[1],
     "settings.stop_mode", "power-off or deallocate"),
    ("azure", {"subscription_id": SUBSCRIPTION, "resource_group": "rg", "base_url": "arm"}, valid("azure")[1],
     "settings.base_url", "URL"),
    ("azure", {"subscription_id": SUBSCRIPTION, "resource_group": "rg", "authority_host": "not a host"},
     valid("azure")[1], "settings.authority_host", "host name"),
    ("azure", valid("azure")[0], {**valid("azure")[1], "tenant_id": "contoso"}, "secrets.tenant_id", "UUID"),
    ("azure", valid("azure")[0], {"tenant_id": TENANT_ID, "client_secret": "s"}, "secrets.client_id", "required"),
    ("azure", valid("azure")[0], {"tenant_id": TENANT_ID, "client_id": CLIENT_ID}, "secrets.client_secret",
     "required"),
]


@pytest.mark.parametrize("kind,settings,secret_values,field,message", INVALID)
def test_invalid_input_names_the_field(
    kind: str, settings: dict[str, Any], secret_values: dict[str, Any], field: str, message: str
) -> None:
    errors = errors_of(kind, settings, secret_values)
    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors[field]


@pytest.mark.parametrize("kind", credentials.KINDS)
def test_unknown_setting_fields_are_named(kind: str) -> None:
    settings, secret_values = valid(kind)
    errors = errors_of(kind, {**settings, "colour": "blue"}, secret_values)
    assert list(errors) == ["settings.colour"]
    assert errors["settings.colour"][0].startswith("unknown field")


def test_an_unknown_kind_is_an_error_on_kind() -> None:
    assert "kind" in errors_of("openstack", {}, {})


def test_settings_and_secrets_must_be_objects() -> None:
    assert set(errors_of("aws", ["region"], "secret")) == {"settings", "secrets"}  # type: ignore[arg-type]


def test_every_error_is_reported_at_once() -> None:
    errors = errors_of("azure", {}, {})
    assert {"settings.subscription_id", "settings.resource_group", "secrets.tenant_id", "secrets.client_id",
            "secrets.client_secret"} <= set(errors)


# -- partial secrets (an update that keeps the stored ones)


@pytest.mark.parametrize("kind", ["kubernetes", "aws", "gcp", "azure"])
def test_an_update_may_leave_secrets_out(kind: str) -> None:
    settings, _ = valid(kind)
    clean, clean_secrets = validate(kind, settings, {}, partial_secrets=True)
    assert clean_secrets == {}
    assert {k: v for k, v in clean.items() if k in settings} == settings


@pytest.mark.parametrize("kind", ["kubernetes", "aws", "gcp", "azure"])
def test_a_create_needs_the_secrets(kind: str) -> None:
    errors = errors_of(kind, valid(kind)[0], {})
    assert errors and all(key.startswith("secrets.") for key in errors)


def test_secrets_given_in_an_update_are_checked_in_full() -> None:
    errors = errors_of("aws", {"region": "us-east-1"}, {"secret_access_key": "s"}, partial_secrets=True)
    assert "secrets.access_key_id" in errors


# -- kubeconfig


def test_a_kubeconfig_with_a_token_user_gives_token_server_and_ca() -> None:
    settings, clean_secrets = validate(
        "kubernetes", {"namespaces": ["shop"]}, {"kubeconfig": kubeconfig({"token": f" {SECRET}\n"})}
    )
    assert clean_secrets == {"token": SECRET}  # the kubeconfig itself is not kept
    assert settings["api_url"] == "https://kube.example.com:6443"
    assert settings["ca_cert_pem"].strip() == CA_PEM.strip()
    assert settings["verify"] is True


def test_explicit_settings_win_over_the_kubeconfig() -> None:
    other_ca = make_ca_pem()
    settings, _ = validate(
        "kubernetes",
        {"api_url": "https://proxy.example.com/k8s", "ca_cert_pem": other_ca, "verify": True, "namespaces": ["a"]},
        {"kubeconfig": kubeconfig({"token": "t"}, insecure=True)},
    )
    assert settings["api_url"] == "https://proxy.example.com/k8s"
    assert settings["ca_cert_pem"].strip() == other_ca.strip()
    assert settings["verify"] is True


def test_a_kubeconfig_that_skips_tls_verification_turns_verify_off() -> None:
    settings, _ = validate("kubernetes", {"namespaces": ["a"]}, {"kubeconfig": kubeconfig({"token": "t"}, ca=None,
                                                                                          insecure=True)})
    assert settings["verify"] is False
    assert "ca_cert_pem" not in settings


def test_a_kubeconfig_without_a_server_needs_api_url() -> None:
    errors = errors_of("kubernetes", {"namespaces": ["a"]}, {"kubeconfig": kubeconfig({"token": "t"}, server=None)})
    assert list(errors) == ["settings.api_url"]


@pytest.mark.parametrize(
    "user,how",
    [
        ({"exec": {"command": "aws", "args": ["eks", "get-token"]}}, "an exec plugin"),
        ({"auth-provider": {"name": "gcp"}}, "an auth provider"),
        ({"client-certificate-data": "Y2VydA==", "client-key-data": SECRET}, "a client certificate"),
        ({"username": "admin", "password": SECRET}, "a user name and password"),
        ({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, "a token file"),
    ],
)
def test_a_kubeconfig_user_without_a_plain_token_is_refused(user: dict[str, Any], how: str) -> None:
    errors = errors_of("kubernetes", {"namespaces": ["a"]}, {"kubeconfig": kubeconfig(user)})
    assert list(errors) == ["secrets.kubeconfig"]
    assert f"authenticates with {how}" in errors["secrets.kubeconfig"][0]
    assert SECRET not in str(errors)


@pytest.mark.parametrize(
    "text,message",
    [
        ("clusters: [", "is not YAML"),
        ("- a list", "is not a kubeconfig"),
        (yaml.safe_dump({"clusters": [], "users": [], "contexts": []}), "no current-context"),
    ],
)
def test_a_malformed_kubeconfig_is_refused(text: str, message: str) -> None:
    errors = errors_of("kubernetes", {"namespaces": ["a"]}, {"kubeconfig": text})
    assert message in errors["secrets.kubeconfig"][0]


def test_a_kubeconfig_whose_ca_is_a_file_path_is_refused() -> None:
    config = yaml.safe_load(kubeconfig({"token": "t"}, ca=None))
    config["clusters"][1]["cluster"]["certificate-authority"] = "/home/me/.minikube/ca.crt"
    errors = errors_of("kubernetes", {"namespaces": ["a"]}, {"kubeconfig": yaml.safe_dump(config)})
    assert "embed it as certificate-authority-data" in errors["secrets.kubeconfig"][0]


def test_a_kubeconfig_with_bad_ca_data_is_refused() -> None:
    config = yaml.safe_load(kubeconfig({"token": "t"}))
    config["clusters"][1]["cluster"]["certificate-authority-data"] = base64.b64encode(b"not a cert").decode()
    errors = errors_of("kubernetes", {"namespaces": ["a"]}, {"kubeconfig": yaml.safe_dump(config)})
    assert "certificate-authority-data" in errors["secrets.kubeconfig"][0]


# -- secrets never shown


LEAKY = [
    ("kubernetes", {"api_url": SECRET, "namespaces": ["a"]}, {"token": "t"}),
    ("kubernetes", valid("kubernetes")[0], {"token": f"Bearer {SECRET}"}),
    ("kubernetes", valid("kubernetes")[0], {"kubeconfig": f'users:\n- user:\n    token: "{SECRET}'}),
    ("kubernetes", valid("kubernetes")[0], {"kubeconfig": f"- {SECRET}"}),
    ("kubernetes", {**valid("kubernetes")[0], "ca_cert_pem": SECRET}, {"token": "t"}),
    ("aws", {"region": "us-east-1"}, {"access_key_id": f"{SECRET} x", "secret_access_key": "s"}),
    ("aws", {"region": "us-east-1"}, {"secret_access_key": SECRET}),
    ("gcp", valid("gcp")[0], {"service_account_key": f'{{"private_key": "{SECRET}"'}),
    ("gcp", valid("gcp")[0], {"service_account_key": {"type": SECRET, "private_key": SECRET}}),
    ("azure", valid("azure")[0], {"tenant_id": SECRET, "client_id": CLIENT_ID, "client_secret": SECRET}),
    ("azure", valid("azure")[0], {"tenant_id": TENANT_ID, "client_id": CLIENT_ID, "client_secret": 42}),
]


@pytest.mark.parametrize("kind,settings,secret_values", LEAKY)
def test_errors_never_repeat_a_secret(kind: str, settings: dict[str, Any], secret_values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(kind, settings, secret_values)
    for shown in (str(caught.value), repr(caught.value), json.dumps(caught.value.message_dict)):
        assert SECRET not in shown


@pytest.mark.parametrize("kind", ["kubernetes", "aws", "gcp", "azure"])
def test_connections_do_not_show_secrets(kind: str) -> None:
    settings, secret_values = valid(kind)
    if kind == "aws":
        secret_values = {**secret_values, "session_token": SECRET}
    conn = connection(kind, settings, secret_values)
    assert SECRET not in repr(conn) and SECRET not in str(conn)


# -- connection()


def test_kubernetes_connection() -> None:
    conn = connection("kubernetes", {"api_url": "https://k8s.example.com:6443/", "ca_cert_pem": CA_PEM,
                                     "verify": False, "namespaces": ["a"]}, {"token": SECRET})
    assert isinstance(conn, KubeConnection)
    assert (conn.api_url, conn.token, conn.verify) == ("https://k8s.example.com:6443", SECRET, False)
    assert conn.ca_cert_pem is not None and conn.ca_cert_pem.strip() == CA_PEM.strip()


def test_kubernetes_connection_from_a_kubeconfig() -> None:
    conn = connection("kubernetes", {"namespaces": ["a"]}, {"kubeconfig": kubeconfig({"token": SECRET})})
    assert (conn.api_url, conn.token) == ("https://kube.example.com:6443", SECRET)


def test_aws_connection() -> None:
    conn = connection(
        "aws",
        {"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000",
         "role_arn": "arn:aws:iam::123456789012:role/chaos"},
        {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET, "session_token": "session"},
    )
    assert conn == AWSConnection(region="eu-west-1", access_key_id="AKIAEXAMPLE", secret_access_key=SECRET,
                                 endpoint_url="http://127.0.0.1:5000", session_token="session")
    assert conn.allow_spec_endpoint is False  # a manifest never steers the credentials elsewhere


def test_gcp_connection() -> None:
    conn = connection("gcp", {**valid("gcp")[0], "api_endpoint": "http://127.0.0.1:8085"}, valid("gcp")[1])
    assert conn == GCPConnection(project="shop-project", zone="us-central1-a", service_account_info=SA_KEY,
                                 api_endpoint="http://127.0.0.1:8085")


def test_azure_connection() -> None:
    conn = connection("azure", {**valid("azure")[0], "stop_mode": "deallocate", "authority_host":
                                "login.microsoftonline.us"}, valid("azure")[1])
    assert conn == AzureConnection(subscription_id=SUBSCRIPTION, resource_group="shop-rg", tenant_id=TENANT_ID,
                                   client_id=CLIENT_ID, client_secret=SECRET, stop_mode="deallocate",
                                   authority_host="login.microsoftonline.us")
    assert conn.base_url == ARM


def test_azure_connection_to_another_cloud() -> None:
    conn = connection("azure", {**valid("azure")[0], "base_url": "https://management.usgovcloudapi.net/"},
                      valid("azure")[1])
    assert conn.base_url == "https://management.usgovcloudapi.net"


def test_a_hosts_environment_has_no_connection() -> None:
    with pytest.raises(ValueError, match="hosts"):
        connection("hosts", {}, {})


def test_connection_refuses_invalid_credentials() -> None:
    with pytest.raises(ValidationError) as caught:
        connection("aws", {"region": "us-east-1"}, {})
    assert "secrets.access_key_id" in caught.value.message_dict


# -- public view


def test_public_view_is_a_copy_of_the_known_settings() -> None:
    stored = {"api_url": "https://k8s", "namespaces": ["a"], "stray": "dropped"}
    shown = public_view("kubernetes", stored)
    assert shown == {"api_url": "https://k8s", "namespaces": ["a"]}
    shown["namespaces"].append("b")
    assert stored["namespaces"] == ["a"]


def test_field_lists_cover_every_kind() -> None:
    assert set(credentials.SETTING_FIELDS) == set(credentials.SECRET_FIELDS) == set(credentials.KINDS)
