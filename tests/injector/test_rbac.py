"""The manifest a tenant applies in its cluster (injector.rbac): parsed back and checked object by object,
against what the Kubernetes driver calls and what the node agent reads from its environment.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from injector import rbac
from injector.drivers import kubernetes as kube_driver
from nodeagent import config as agent_config
from tests.injector.test_credentials import make_ca_pem

TOKEN = "cpr_registration-token-never-elsewhere"
GATEWAY = "gateway.chaosplane.example.com:7443"


def manifest(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "environment_name": "prod",
        "scope": "namespace",
        "namespaces": ["shop", "payments"],
        "gateway_address": GATEWAY,
        "registration_token": TOKEN,
        "agent_image": "ghcr.io/chaosplane/nodeagent:0.1.0",
    }
    return rbac.cluster_manifest(**{**args, **overrides})


def objects(**overrides: Any) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest(**overrides)) if doc is not None]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return found


def rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for d in docs if d["kind"] in ("Role", "ClusterRole") for rule in d["rules"]]


def grants(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(res, verb) for rule in rules(docs) for res in rule["resources"] for verb in rule["verbs"]}


def driver_calls() -> set[tuple[str, str]]:
    """(resource, verb) of every CoreV1Api call the Kubernetes driver makes, read from its source."""
    source = Path(kube_driver.__file__).read_text()
    verbs = {"list": "list", "read": "get", "patch": "patch", "delete": "delete", "create": "create",
             "replace": "update"}
    calls = set()
    for method in set(re.findall(r"self\.core\.(\w+)", source)):
        verb, _, rest = method.partition("_")
        resource = rest.removeprefix("namespaced_")
        assert verb in verbs, f"the driver calls {method}: teach this test (and injector.rbac) about it"
        calls.add((resource + "s", verbs[verb]))
    return calls


# -- the shape of the manifest


def test_the_manifest_is_yaml_documents_in_a_stable_order() -> None:
    text = manifest()
    assert text == manifest()
    kinds = [d["kind"] for d in objects()]
    assert kinds == ["Namespace", "ServiceAccount", "Secret", "Role", "RoleBinding", "Role", "RoleBinding",
                     "Secret", "ConfigMap", "DaemonSet"]
    assert list(objects()[0]) == ["apiVersion", "kind", "metadata"]


def test_the_agent_namespace_holds_the_controller_and_agent() -> None:
    docs = objects(agent_namespace="chaos-tools")
    assert one(docs, "Namespace", "chaos-tools")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "privileged"
    )
    for kind, name in [("ServiceAccount", "chaosplane-controller"), ("Secret", "chaosplane-controller-token"),
                       ("Secret", "chaosplane-agent-registration"), ("DaemonSet", "chaosplane-agent")]:
        assert one(docs, kind, name)["metadata"]["namespace"] == "chaos-tools"


def test_every_object_is_labelled_with_the_environment() -> None:
    for doc in objects(environment_name="staging-eu"):
        assert doc["metadata"]["labels"]["chaosplane.io/environment"] == "staging-eu"


def test_the_controller_token_secret_belongs_to_the_service_account() -> None:
    secret = one(objects(), "Secret", "chaosplane-controller-token")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "chaosplane-controller"
    assert "data" not in secret and "stringData" not in secret  # Kubernetes fills the token in


# -- RBAC


def test_namespace_scope_has_roles_only_in_the_given_namespaces() -> None:
    docs = objects(scope="namespace", namespaces=["shop", "payments", "shop"])
    assert sorted(r["metadata"]["namespace"] for r in of_kind(docs, "Role")) == ["payments", "shop"]
    bindings = of_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["payments", "shop"]
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "chaosplane-controller"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "chaosplane-controller",
                                        "namespace": "chaosplane"}]
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")


def test_cluster_scope_has_one_cluster_role_and_no_roles() -> None:
    docs = objects(scope="cluster", namespaces=[])
    [role], [binding] = of_kind(docs, "ClusterRole"), of_kind(docs, "ClusterRoleBinding")
    assert "namespace" not in role["metadata"]
    assert binding["roleRef"]["kind"] == "ClusterRole" and binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == "chaosplane-controller"
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")


def test_cluster_scope_grants_exactly_what_the_driver_calls() -> None:
    assert grants(objects(scope="cluster")) == driver_calls()


def test_namespace_scope_grants_the_driver_calls_on_pods_only() -> None:
    # A Role cannot grant cluster-scoped resources (nodes), so nodeSelectors need scope "cluster".
    assert grants(objects(scope="namespace")) == {call for call in driver_calls() if call[0] == "pods"}


@pytest.mark.parametrize("scope", rbac.SCOPES)
def test_no_rule_grants_a_wildcard_or_secrets(scope: str) -> None:
    for rule in rules(objects(scope=scope)):
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key]
        assert rule["apiGroups"] == [""]
        assert "secrets" not in rule["resources"]
        assert not {"escalate", "bind", "impersonate", "create"} & set(rule["verbs"])


# -- the registration token and the agent


def test_the_token_appears_only_in_the_registration_secret() -> None:
    docs = objects()
    holding = [d for d in docs if TOKEN in yaml.safe_dump(d)]
    assert holding == [one(docs, "Secret", "chaosplane-agent-registration")]
    assert holding[0]["stringData"] == {"token": TOKEN}
    assert manifest().count(TOKEN) == 1


def test_without_a_token_the_secret_holds_a_placeholder_and_says_so() -> None:
    secret = one(objects(registration_token=None), "Secret", "chaosplane-agent-registration")
    assert secret["stringData"] == {"token": "<paste the registration token>"}
    assert "registration token" in secret["metadata"]["annotations"]["chaosplane.io/note"]
    assert "annotations" not in one(objects(), "Secret", "chaosplane-agent-registration")["metadata"]


def test_the_gateway_ca_goes_into_a_config_map_the_agent_mounts() -> None:
    ca = make_ca_pem()
    config_map = one(objects(gateway_ca_pem=ca), "ConfigMap", "chaosplane-gateway-ca")
    assert config_map["data"]["ca.crt"] == ca
    assert "annotations" not in config_map["metadata"]
    placeholder = one(objects(), "ConfigMap", "chaosplane-gateway-ca")
    assert "CA certificate" in placeholder["metadata"]["annotations"]["chaosplane.io/note"]


def test_the_agent_daemonset_runs_privileged_in_the_host_namespaces() -> None:
    daemonset = one(objects(), "DaemonSet", "chaosplane-agent")
    pod = daemonset["spec"]["template"]["spec"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= daemonset["spec"]["template"]["metadata"][
        "labels"].items()
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    assert pod["automountServiceAccountToken"] is False  # the agent needs no Kubernetes API access
    [container] = pod["containers"]
    assert container["image"] == "ghcr.io/chaosplane/nodeagent:0.1.0"
    assert container["securityContext"] == {"privileged": True}
    env = {e["name"]: e for e in container["env"]}
    assert env["CHAOSPLANE_AGENT_GATEWAY"]["value"] == GATEWAY
    assert env["CHAOSPLANE_AGENT_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "chaosplane-agent-registration", "key": "token"}
    }
    assert env["CHAOSPLANE_AGENT_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_the_agent_mounts_the_runtime_sockets_cgroups_and_its_state() -> None:
    pod = one(objects(), "DaemonSet", "chaosplane-agent")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    host_paths = {v["hostPath"]["path"]: v["hostPath"].get("type") for v in volumes.values() if "hostPath" in v}
    assert host_paths == {
        "/run/containerd/containerd.sock": None,  # no type: a node without this runtime still runs the agent
        "/var/run/crio/crio.sock": None,
        "/var/run/docker.sock": None,
        "/sys/fs/cgroup": "Directory",
        "/var/lib/chaosplane-agent": "DirectoryOrCreate",
    }
    for path in host_paths:
        assert volumes[mounts[path]]["hostPath"]["path"] == path  # mounted where the host has it


def test_the_agent_reads_its_settings_from_the_daemonset(tmp_path: Path) -> None:
    """The env the DaemonSet sets is what `python -m nodeagent` parses, paths included."""
    pod = one(objects(), "DaemonSet", "chaosplane-agent")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    ca_file = next(e["value"] for e in container["env"] if e["name"] == "CHAOSPLANE_AGENT_CA_FILE")
    assert Path(ca_file).parent == Path(mounts["gateway-ca"])
    (tmp_path / "ca.crt").write_text(make_ca_pem())

    environ = {}
    for entry in container["env"]:
        if "value" in entry:
            environ[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            environ[entry["name"]] = TOKEN
        else:
            environ[entry["name"]] = "node-1"
    environ["CHAOSPLANE_AGENT_CA_FILE"] = str(tmp_path / "ca.crt")  # the mounted file, here
    parsed = agent_config.parse([], environ)
    assert (parsed.gateway, parsed.token, parsed.name) == (GATEWAY, TOKEN, "node-1")
    assert parsed.state_dir == parsed.journal.parent == Path(mounts["state"])


# -- bad input


@pytest.mark.parametrize(
    "argument,value",
    [
        ("environment_name", "Prod_1"),
        ("environment_name", "x" * 64),
        ("agent_namespace", "chaos plane"),
        ("scope", "everything"),
        ("namespaces", "shop"),
        ("namespaces", ["shop", "Shop"]),
        ("namespaces", []),
        ("gateway_address", "gateway.example.com"),
        ("gateway_address", "gateway.example.com:0"),
        ("gateway_address", "gateway.example.com:70000"),
        ("gateway_address", "http://gateway:7443"),
        ("registration_token", "short"),
        ("registration_token", "has a space in it"),
        ("agent_image", "not an image"),
        ("gateway_ca_pem", "-----BEGIN PRIVATE KEY-----"),
    ],
)
def test_bad_input_raises_naming_the_argument(argument: str, value: Any) -> None:
    with pytest.raises(ValueError) as caught:
        manifest(**{argument: value})
    assert str(caught.value).startswith(argument)
    if argument == "registration_token":
        assert value not in str(caught.value)


def test_cluster_scope_needs_no_namespaces() -> None:
    assert of_kind(objects(scope="cluster", namespaces=[]), "ClusterRole")


def test_an_ipv6_gateway_is_accepted() -> None:
    daemonset = one(objects(gateway_address="[fd00::1]:7443"), "DaemonSet", "chaosplane-agent")
    assert daemonset["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "[fd00::1]:7443"
