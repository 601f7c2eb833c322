"""The manifest a tenant applies in its own cluster so Chaosplane can work there (as Chaos Mesh's dashboard
generates RBAC manifests): a namespace with the controller's ServiceAccount and its token Secret, the
least RBAC the Kubernetes driver needs, and the node agent as a DaemonSet with its registration token.

The RBAC rules are derived from the calls injector/drivers/kubernetes.py makes, and hold nothing else:
no wildcard, no Secrets, no watch. With scope "namespace" there are only Roles in the chosen
namespaces: a Role cannot grant nodes, so there `nodeSelectors` cannot be resolved (the driver's
list_node is refused); "cluster" grants the same on pods everywhere, plus listing nodes.

The agent itself gets no Kubernetes API access at all (automountServiceAccountToken: false): it dials
out to the gateway and works on the node.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from injector.credentials import CERT_MARK, DNS_LABEL, HOSTNAME, IMAGE

CONTROLLER = "chaosplane-controller"
CONTROLLER_TOKEN_SECRET = "chaosplane-controller-token"  # noqa: S105 - a Secret's name
AGENT = "chaosplane-agent"
REGISTRATION_SECRET = "chaosplane-agent-registration"  # noqa: S105 - a Secret's name
GATEWAY_CA_CONFIGMAP = "chaosplane-gateway-ca"
TOKEN_PLACEHOLDER = "<paste the registration token>"  # noqa: S105 - shown where the token goes
CA_PLACEHOLDER = "<paste the agent gateway's CA certificate (PEM)>"
NOTE = "chaosplane.io/note"
AGENT_STATE_DIR = "/var/lib/chaosplane-agent"  # nodeagent.config.DEFAULT_STATE_DIR; the journal lives there too
AGENT_CA_DIR = "/etc/chaosplane-agent"
TOKEN = re.compile(r"^[\x21-\x7e]{8,4096}$")  # what the agent accepts (nodeagent.config.TOKEN)
SCOPES = ("namespace", "cluster")

# Each rule and the driver call that needs it (injector/drivers/kubernetes.py, KubernetesDriver).
POD_RULE = {
    "apiGroups": [""],
    "resources": ["pods"],
    "verbs": [
        "get",  # read_namespaced_pod: pod-failure reads the pod before patching it and when restoring it
        "list",  # list_namespaced_pod: candidates() lists the pods of each selected namespace
        "patch",  # patch_namespaced_pod: pod-failure swaps images and records them in an annotation
        "delete",  # delete_namespaced_pod: pod-kill
    ],
}
NODE_RULE = {
    "apiGroups": [""],
    "resources": ["nodes"],
    "verbs": ["list"],  # list_node: candidates() resolves nodeSelectors to node names
}
# What the agent reaches containers through (nodeagent/executors/containers.py). Mounted without a hostPath
# type, as Chaos Mesh's chaos-daemon does: type Socket would keep the pod from starting on a node without
# that runtime. Where a socket is missing the runtime puts an empty directory in its place, which the agent
# cannot connect to and so does not use.
RUNTIME_SOCKETS = {
    "containerd-sock": "/run/containerd/containerd.sock",
    "crio-sock": "/var/run/crio/crio.sock",
    "docker-sock": "/var/run/docker.sock",
}


def cluster_manifest(
    *,
    environment_name: str,
    scope: str,
    namespaces: list[str],
    gateway_address: str,
    registration_token: str | None,
    agent_image: str,
    agent_namespace: str = "chaosplane",
    gateway_ca_pem: str | None = None,
) -> str:
    """Multi-document YAML to `kubectl apply -f`; ValueError naming the argument on bad input.

    Without `registration_token` (or `gateway_ca_pem`) the Secret (ConfigMap) holds a placeholder
    and says so in its `chaosplane.io/note` annotation.
    """
    _check(environment_name, agent_namespace, scope, namespaces, gateway_address, registration_token,
           agent_image, gateway_ca_pem)
    namespaces = list(dict.fromkeys(namespaces))
    labels = {"app.kubernetes.io/managed-by": "chaosplane", "chaosplane.io/environment": environment_name}

    def meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name}
        if namespace is not None:
            out["namespace"] = namespace
        out["labels"] = dict(labels)
        out.update(extra)
        return out

    subject = {"kind": "ServiceAccount", "name": CONTROLLER, "namespace": agent_namespace}
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            # The agent is privileged: Pod Security Admission must allow it in this namespace.
            "metadata": {
                "name": agent_namespace,
                "labels": {**labels, "pod-security.kubernetes.io/enforce": "privileged"},
            },
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(CONTROLLER, agent_namespace)},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": meta(
                CONTROLLER_TOKEN_SECRET, agent_namespace,
                annotations={
                    "kubernetes.io/service-account.name": CONTROLLER,
                    NOTE: "Kubernetes fills in data.token; decode it from base64 and give it to Chaosplane "
                    "as the environment's secrets.token",
                },
            ),
        },
    ]
    if scope == "namespace":
        for ns in namespaces:
            docs.append({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta(CONTROLLER, ns),
                "rules": [_copy_rule(POD_RULE)],
            })
            docs.append({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta(CONTROLLER, ns),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CONTROLLER},
                "subjects": [dict(subject)],
            })
    else:
        docs.append({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(CONTROLLER),
            "rules": [_copy_rule(POD_RULE), _copy_rule(NODE_RULE)],
        })
        docs.append({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(CONTROLLER),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CONTROLLER},
            "subjects": [dict(subject)],
        })

    token_note = {} if registration_token else {
        "annotations": {NOTE: "replace stringData.token with the environment's registration token from Chaosplane"}
    }
    docs.append({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta(REGISTRATION_SECRET, agent_namespace, **token_note),
        "stringData": {"token": registration_token or TOKEN_PLACEHOLDER},
    })
    ca_note = {} if gateway_ca_pem else {
        "annotations": {NOTE: "replace data.ca.crt with the CA certificate that signed the agent gateway's certificate"}
    }
    docs.append({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(GATEWAY_CA_CONFIGMAP, agent_namespace, **ca_note),
        "data": {"ca.crt": gateway_ca_pem or CA_PLACEHOLDER},
    })
    docs.append(_daemonset(meta(AGENT, agent_namespace), labels, gateway_address, agent_image))

    header = (
        f"# Chaosplane environment {environment_name}: what Chaosplane needs in this cluster.\n"
        "# Apply with: kubectl apply -f <this file>\n"
    )
    return header + yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line text (a PEM certificate) as a literal block."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def _daemonset(metadata: dict[str, Any], labels: dict[str, str], gateway: str, image: str) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": AGENT}
    volumes: list[dict[str, Any]] = [
        {"name": name, "hostPath": {"path": path}} for name, path in RUNTIME_SOCKETS.items()
    ]
    volumes += [
        {"name": "cgroup", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}},
        {"name": "state", "hostPath": {"path": AGENT_STATE_DIR, "type": "DirectoryOrCreate"}},
        {"name": "gateway-ca", "configMap": {"name": GATEWAY_CA_CONFIGMAP}},
    ]
    mounts = [{"name": name, "mountPath": path} for name, path in RUNTIME_SOCKETS.items()]
    mounts += [
        {"name": "cgroup", "mountPath": "/sys/fs/cgroup"},
        {"name": "state", "mountPath": AGENT_STATE_DIR},
        {"name": "gateway-ca", "mountPath": AGENT_CA_DIR, "readOnly": True},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": {**labels, **selector}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "hostPID": True,
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "containers": [{
                        "name": "agent",
                        "image": image,
                        "env": [
                            {"name": "CHAOSPLANE_AGENT_GATEWAY", "value": gateway},
                            {
                                "name": "CHAOSPLANE_AGENT_TOKEN",
                                "valueFrom": {"secretKeyRef": {"name": REGISTRATION_SECRET, "key": "token"}},
                            },
                            {
                                "name": "CHAOSPLANE_AGENT_NAME",
                                "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                            },
                            {"name": "CHAOSPLANE_AGENT_CA_FILE", "value": f"{AGENT_CA_DIR}/ca.crt"},
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    }


def _copy_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) for key, value in rule.items()}


def _check(
    environment_name: Any, agent_namespace: Any, scope: Any, namespaces: Any, gateway_address: Any,
    registration_token: Any, agent_image: Any, gateway_ca_pem: Any,
) -> None:
    label = "a DNS label (lowercase letters, digits and '-', up to 63 characters)"
    if not isinstance(environment_name, str) or not DNS_LABEL.match(environment_name):
        raise ValueError(f"environment_name must be {label}")
    if not isinstance(agent_namespace, str) or not DNS_LABEL.match(agent_namespace):
        raise ValueError(f"agent_namespace must be {label}")
    if scope not in SCOPES:
        raise ValueError("scope must be namespace or cluster")
    if not isinstance(namespaces, (list, tuple)):
        raise ValueError("namespaces must be a list of namespace names")
    for i, ns in enumerate(namespaces):
        if not isinstance(ns, str) or not DNS_LABEL.match(ns):
            raise ValueError(f"namespaces: item {i + 1} must be {label}")
    if scope == "namespace" and not namespaces:
        raise ValueError("namespaces must name at least one namespace with scope namespace")
    if not isinstance(gateway_address, str) or not _host_port(gateway_address):
        raise ValueError("gateway_address must be HOST:PORT (an IPv6 address in brackets: [::1]:7443)")
    if registration_token is not None and (
        not isinstance(registration_token, str) or not TOKEN.match(registration_token)
    ):  # the token is never echoed
        raise ValueError("registration_token must be 8 to 4096 printable characters without spaces")
    if not isinstance(agent_image, str) or not IMAGE.match(agent_image):
        raise ValueError("agent_image must be a container image reference (like ghcr.io/org/image:tag)")
    if gateway_ca_pem is not None and (
        not isinstance(gateway_ca_pem, str) or CERT_MARK not in gateway_ca_pem or "PRIVATE KEY" in gateway_ca_pem
    ):
        raise ValueError(f"gateway_ca_pem must be PEM certificate text (starting {CERT_MARK}), no private key")


def _host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        bare = host[1:-1]
        ok_host = bool(bare) and ":" in bare and all(c in "0123456789abcdefABCDEF:." for c in bare)
    else:
        ok_host = bool(HOSTNAME.match(host))
    return bool(sep) and ok_host and port.isdigit() and 0 < int(port) < 65536
