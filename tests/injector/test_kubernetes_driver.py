"""The Kubernetes driver against an API server over HTTP: the server is tests.fakes.kubeapi, a local
emulator of the Kubernetes API (a real cluster cannot run here), and the client is the real official
`kubernetes` client, unpatched. The node agent side is a recording stand-in passed to the driver
(`send_to_agent`, `recover_on_agent`); the agent's own path is tested in tests/nodeagent. No database."""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from injector.drivers.agent import AgentResult, AgentTarget, AgentTimeout
from injector.drivers.base import PermanentError, TargetRef, TransientError
from injector.drivers.kubernetes import (
    ORIGINAL_IMAGES,
    PAUSE_IMAGE,
    KubeConnection,
    KubernetesDriver,
    agent_fault_id,
)
from injector.faults import FaultSpec, kind
from injector.selection import ModeSpec, select
from tests.fakes.kubeapi import KubeAPI

TOKEN = "kube-test-token"


def fault(kind_name: str, spec: dict[str, Any]) -> FaultSpec:
    return kind(kind_name).parse(spec)


POD_KILL = fault("PodChaos", {"action": "pod-kill"})


@dataclass(frozen=True)
class Agent:
    uuid: Any
    tenant_id: int
    name: str


@dataclass
class AgentCalls:
    """Records what the driver asks of node agents and answers as told."""

    injected: list[dict[str, Any]] = field(default_factory=list)
    recovered: list[dict[str, Any]] = field(default_factory=list)
    refuse: str = ""
    timeout: bool = False

    def inject(self, agent: Any, fault_id: str, kind: str, action: str, params: dict[str, Any],
               target: AgentTarget, expires_at: float, timeout: float = 10.0) -> AgentResult:
        if self.timeout:
            raise AgentTimeout(f"agent {agent.name} did not answer")
        self.injected.append({"agent": agent.name, "fault_id": fault_id, "kind": kind, "action": action,
                              "params": params, "target": target, "expires_at": expires_at})
        if self.refuse:
            return AgentResult(command_id="c", ok=False, error=self.refuse)
        return AgentResult(command_id="c", ok=True, detail="applied")

    def recover(self, agent: Any, fault_id: str, timeout: float = 10.0) -> AgentResult:
        self.recovered.append({"agent": agent.name, "fault_id": fault_id})
        return AgentResult(command_id="c", ok=True)


AGENTS = {n: Agent(uuid.uuid4(), 1, f"agent-{n}") for n in ("node-1", "node-2", "node-3")}


@pytest.fixture
def api() -> Any:
    with KubeAPI(token=TOKEN) as server:
        server.add_node("node-1", labels={"zone": "a", "disk": "ssd"})
        server.add_node("node-2", labels={"zone": "b"})
        server.add_node("node-3", labels={"zone": "a"})
        server.add_namespace("shop", labels={"team": "payments"})
        server.add_namespace("other")
        add = server.add_pod
        add("shop", "cart-1", labels={"app": "cart", "tier": "backend", "version": "v1"}, node="node-1",
            annotations={"team": "payments", "chaos": "ok"}, owner=("ReplicaSet", "cart-7d9"))
        add("shop", "cart-2", labels={"app": "cart", "tier": "backend", "version": "v2"}, node="node-2",
            annotations={"team": "payments"}, owner=("ReplicaSet", "cart-7d9"))
        add("shop", "web-1", labels={"app": "web", "tier": "frontend"}, node="node-3", annotations={"team": "web"})
        add("shop", "job-1", labels={"app": "batch"}, node="node-1", phase="Succeeded")
        add("shop", "cart-new", labels={"app": "cart", "version": "v3"}, node=None, phase="Pending")
        add("shop", "mesh-1", labels={"app": "mesh"}, node="node-2", runtime="cri-o",
            containers={"app": "shop/mesh:2.0", "proxy": "envoyproxy/envoy:v1.30"})
        add("other", "cart-9", labels={"app": "cart", "tier": "backend"}, node="node-1", runtime="docker")
        yield server


@pytest.fixture
def agents() -> AgentCalls:
    return AgentCalls()


@pytest.fixture
def driver(api: KubeAPI, agents: AgentCalls) -> Any:
    with KubernetesDriver(
        KubeConnection(api.url, TOKEN), agent_for_node=AGENTS.get,
        send_to_agent=agents.inject, recover_on_agent=agents.recover,
    ) as d:
        yield d


def keys(targets: list[TargetRef]) -> list[str]:
    return [t.key for t in targets]


def pick(driver: KubernetesDriver, selector: dict[str, Any], namespace: str = "shop",
         spec: FaultSpec = POD_KILL) -> list[str]:
    return keys(driver.candidates(selector, namespace, spec))


SHOP = ["pod/shop/cart-1", "pod/shop/cart-2", "pod/shop/cart-new", "pod/shop/job-1", "pod/shop/mesh-1",
        "pod/shop/web-1"]


# -- selection -----------------------------------------------------------------------------------------------


def test_without_namespaces_the_experiment_namespace_is_the_scope(driver: KubernetesDriver) -> None:
    assert pick(driver, {}) == SHOP
    assert pick(driver, None) == SHOP  # type: ignore[arg-type]
    assert pick(driver, {}, namespace="other") == ["pod/other/cart-9"]
    with pytest.raises(PermanentError, match="no namespace"):
        driver.candidates({}, "", POD_KILL)


def test_namespaces_replace_the_default(driver: KubernetesDriver) -> None:
    assert pick(driver, {"namespaces": ["other"]}) == ["pod/other/cart-9"]
    assert pick(driver, {"namespaces": ["shop", "other"]}) == ["pod/other/cart-9", *SHOP]
    assert pick(driver, {"namespaces": ["empty"]}) == []


def test_label_selectors_are_evaluated_by_the_api_server(driver: KubernetesDriver, api: KubeAPI) -> None:
    assert pick(driver, {"labelSelectors": {"app": "cart"}}) == ["pod/shop/cart-1", "pod/shop/cart-2",
                                                                 "pod/shop/cart-new"]
    assert pick(driver, {"labelSelectors": {"app": "cart", "version": "v2"}}) == ["pod/shop/cart-2"]
    listed = api.requests_to("GET", "/api/v1/namespaces/shop/pods")
    assert listed[-1].query["labelSelector"] == "app=cart,version=v2"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "version", "operator": "In", "values": ["v1", "v3"]}, ["pod/shop/cart-1", "pod/shop/cart-new"]),
        ({"key": "app", "operator": "NotIn", "values": ["cart", "batch"]}, ["pod/shop/mesh-1", "pod/shop/web-1"]),
        ({"key": "tier", "operator": "Exists"}, ["pod/shop/cart-1", "pod/shop/cart-2", "pod/shop/web-1"]),
        ({"key": "tier", "operator": "DoesNotExist"}, ["pod/shop/cart-new", "pod/shop/job-1", "pod/shop/mesh-1"]),
    ],
)
def test_expression_selectors_are_set_based_label_selectors(
    driver: KubernetesDriver, api: KubeAPI, expression: dict[str, Any], expected: list[str]
) -> None:
    assert pick(driver, {"expressionSelectors": [expression]}) == expected
    sent = api.requests_to("GET", "/api/v1/namespaces/shop/pods")[-1].query["labelSelector"]
    assert sent in ("version in (v1,v3)", "app notin (cart,batch)", "tier", "!tier")


def test_not_in_also_matches_pods_without_the_label(driver: KubernetesDriver) -> None:
    # Kubernetes' semantics: `version notin (v1)` is true for a pod that has no `version` label.
    got = pick(driver, {"expressionSelectors": [{"key": "version", "operator": "NotIn", "values": ["v1"]}]})
    assert "pod/shop/web-1" in got and "pod/shop/cart-1" not in got


def test_annotation_selectors_all_must_match(driver: KubernetesDriver) -> None:
    assert pick(driver, {"annotationSelectors": {"team": "payments"}}) == ["pod/shop/cart-1", "pod/shop/cart-2"]
    assert pick(driver, {"annotationSelectors": {"team": "payments", "chaos": "ok"}}) == ["pod/shop/cart-1"]
    assert pick(driver, {"annotationSelectors": {"team": "nobody"}}) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"metadata.name": "web-1"}, ["pod/shop/web-1"]),
        ({"status.phase": "Pending"}, ["pod/shop/cart-new"]),
        ({"spec.nodeName": "node-2"}, ["pod/shop/cart-2", "pod/shop/mesh-1"]),
        ({"spec.nodeName": "node-1", "status.phase": "Running"}, ["pod/shop/cart-1"]),
    ],
)
def test_field_selectors_are_evaluated_by_the_api_server(
    driver: KubernetesDriver, api: KubeAPI, fields: dict[str, str], expected: list[str]
) -> None:
    assert pick(driver, {"fieldSelectors": fields}) == expected
    sent = api.requests_to("GET", "/api/v1/namespaces/shop/pods")[-1].query["fieldSelector"]
    assert sent == ",".join(f"{k}={v}" for k, v in sorted(fields.items()))


def test_an_unsupported_field_selector_is_the_api_servers_permanent_error(driver: KubernetesDriver) -> None:
    with pytest.raises(PermanentError, match="field label not supported: spec.hostname"):
        driver.candidates({"fieldSelectors": {"spec.hostname": "x"}}, "shop", POD_KILL)


def test_nodes_and_node_selectors(driver: KubernetesDriver, api: KubeAPI) -> None:
    assert pick(driver, {"nodes": ["node-1"]}) == ["pod/shop/cart-1", "pod/shop/job-1"]
    assert pick(driver, {"nodeSelectors": {"zone": "a"}}) == ["pod/shop/cart-1", "pod/shop/job-1", "pod/shop/web-1"]
    assert api.requests_to("GET", "/api/v1/nodes")[-1].query["labelSelector"] == "zone=a"
    assert pick(driver, {"nodeSelectors": {"zone": "a", "disk": "ssd"}}) == ["pod/shop/cart-1", "pod/shop/job-1"]
    # Both together: the nodes they name are combined (Chaos Mesh's union).
    assert pick(driver, {"nodes": ["node-2"], "nodeSelectors": {"disk": "ssd"}}) == [
        "pod/shop/cart-1", "pod/shop/cart-2", "pod/shop/job-1", "pod/shop/mesh-1"]
    # A node label no node has selects nothing (never every pod).
    assert pick(driver, {"nodeSelectors": {"zone": "mars"}}) == []


def test_pods_select_exactly_those_in_their_namespaces(driver: KubernetesDriver) -> None:
    assert pick(driver, {"pods": {"shop": ["web-1", "cart-2"]}}) == ["pod/shop/cart-2", "pod/shop/web-1"]
    # Not limited to the experiment's namespace; a name that does not exist is skipped.
    assert pick(driver, {"pods": {"other": ["cart-9", "gone"], "shop": ["web-1"]}}) == [
        "pod/other/cart-9", "pod/shop/web-1"]
    assert pick(driver, {"pods": {"nowhere": ["x"]}}) == []
    # Other fields still narrow the named pods.
    assert pick(driver, {"pods": {"shop": ["web-1", "cart-2"]}, "labelSelectors": {"app": "cart"}}) == [
        "pod/shop/cart-2"]
    assert pick(driver, {"pods": {"shop": ["web-1"], "other": ["cart-9"]}, "namespaces": ["other"]}) == [
        "pod/other/cart-9"]


def test_pod_phase_selectors(driver: KubernetesDriver) -> None:
    assert pick(driver, {"podPhaseSelectors": ["Succeeded"]}) == ["pod/shop/job-1"]
    assert pick(driver, {"podPhaseSelectors": ["Pending", "Succeeded"]}) == ["pod/shop/cart-new", "pod/shop/job-1"]
    assert pick(driver, {"podPhaseSelectors": ["Failed"]}) == []


def test_every_field_combined_must_match(driver: KubernetesDriver) -> None:
    selector = {
        "namespaces": ["shop", "other"],
        "labelSelectors": {"tier": "backend"},
        "expressionSelectors": [{"key": "app", "operator": "In", "values": ["cart"]}],
        "annotationSelectors": {"team": "payments"},
        "fieldSelectors": {"status.phase": "Running"},
        "nodeSelectors": {"zone": "a"},
        "podPhaseSelectors": ["Running"],
    }
    assert pick(driver, selector) == ["pod/shop/cart-1"]
    assert pick(driver, {**selector, "nodes": ["node-2"]}) == ["pod/shop/cart-1", "pod/shop/cart-2"]
    assert pick(driver, {**selector, "annotationSelectors": {"chaos": "ok", "team": "web"}}) == []


def test_container_names_leave_out_pods_without_those_containers(driver: KubernetesDriver) -> None:
    kill_proxy = fault("PodChaos", {"action": "container-kill", "containerNames": ["proxy"]})
    assert pick(driver, {}, spec=kill_proxy) == ["pod/shop/mesh-1"]
    stress_app = fault("StressChaos", {"stressors": {"cpu": {"workers": 1}}, "containerNames": ["app"]})
    assert pick(driver, {}, spec=stress_app) == SHOP


def test_a_target_carries_what_the_driver_needs(driver: KubernetesDriver, api: KubeAPI) -> None:
    (target,) = driver.candidates({"pods": {"shop": ["mesh-1"]}}, "shop", POD_KILL)
    pod = api.pod("shop", "mesh-1")
    assert target.key == "pod/shop/mesh-1" and target.namespace == "shop"
    assert target.display == "shop/mesh-1 on node-2"
    assert target.labels == {"app": "mesh"}
    assert target.data["uid"] == pod["metadata"]["uid"]
    assert target.data["nodeName"] == "node-2"
    assert target.data["containerNames"] == ["app", "proxy"]
    assert target.data["containers"] == {s["name"]: s["containerID"] for s in pod["status"]["containerStatuses"]}
    assert target.data["containers"]["proxy"].startswith("cri-o://")
    json.dumps(target.data)  # stored on the Injection row
    (pending,) = driver.candidates({"pods": {"shop": ["cart-new"]}}, "shop", POD_KILL)
    assert pending.data["nodeName"] == "" and pending.data["containers"] == {"app": ""}


def test_modes_pick_among_the_candidates(driver: KubernetesDriver) -> None:
    targets = driver.candidates({}, "shop", POD_KILL)
    assert select(targets, ModeSpec.parse("all", None), seed=1) == targets
    one = select(targets, ModeSpec.parse("one", None), seed=7)
    assert len(one) == 1 and one[0] in targets
    fixed = select(targets, ModeSpec.parse("fixed", "4"), seed=3)
    assert len(fixed) == 4 and fixed == select(driver.candidates({}, "shop", POD_KILL), ModeSpec.parse("fixed", 4), 3)
    assert len(select(targets, ModeSpec.parse("fixed-percent", "50"), seed=3)) == 3
    assert len(select(targets, ModeSpec.parse("fixed-percent", "10"), seed=3)) == 1  # rounds up
    assert len(select(targets, ModeSpec.parse("random-max-percent", "50"), seed=3)) <= 3


# -- pod-kill ------------------------------------------------------------------------------------------------


def target_of(driver: KubernetesDriver, ns: str, name: str) -> TargetRef:
    (target,) = driver.candidates({"pods": {ns: [name]}}, ns, POD_KILL)
    return target


def test_pod_kill_deletes_with_the_grace_period(driver: KubernetesDriver, api: KubeAPI) -> None:
    target = target_of(driver, "shop", "cart-1")
    kill = fault("PodChaos", {"action": "pod-kill", "gracePeriod": 7})
    assert "deleted pod shop/cart-1" in driver.inject(target, kill, "f1", 0)
    assert api.pod("shop", "cart-1") is None
    assert api.deleted == [{"namespace": "shop", "name": "cart-1", "uid": target.data["uid"],
                            "gracePeriodSeconds": 7}]
    driver.recover(target, kill, "f1")  # one-shot: nothing to undo, and no error
    driver.inject(target_of(driver, "shop", "cart-2"), POD_KILL, "f2", 0)
    assert api.deleted[-1]["gracePeriodSeconds"] == 0  # the default: at once


def test_pod_kill_leaves_a_pod_recreated_under_the_same_name(driver: KubernetesDriver, api: KubeAPI) -> None:
    target = target_of(driver, "shop", "cart-1")
    api.remove_pod("shop", "cart-1")
    api.add_pod("shop", "cart-1", labels={"app": "cart"}, node="node-1")  # a new uid
    with pytest.raises(PermanentError, match="409"):
        driver.inject(target, POD_KILL, "f1", 0)
    assert api.pod("shop", "cart-1") is not None and api.deleted == []


# -- pod-failure ---------------------------------------------------------------------------------------------

FAILURE = fault("PodChaos", {"action": "pod-failure"})


def images(api: KubeAPI, ns: str, name: str) -> dict[str, str]:
    pod = api.pod(ns, name)
    assert pod is not None
    return {c["name"]: c["image"] for c in pod["spec"]["containers"]}


def annotation(api: KubeAPI, ns: str, name: str) -> dict[str, Any] | None:
    raw = (api.pod(ns, name)["metadata"].get("annotations") or {}).get(ORIGINAL_IMAGES)
    return json.loads(raw) if raw is not None else None


def test_pod_failure_swaps_images_and_recovery_restores_them_exactly(driver: KubernetesDriver, api: KubeAPI) -> None:
    before = api.pod("shop", "mesh-1")
    target = target_of(driver, "shop", "mesh-1")
    driver.inject(target, FAILURE, "run-1", 0)
    assert images(api, "shop", "mesh-1") == {"app": PAUSE_IMAGE, "proxy": PAUSE_IMAGE}
    assert annotation(api, "shop", "mesh-1") == {"run-1": {"app": "shop/mesh:2.0", "proxy": "envoyproxy/envoy:v1.30"}}
    patches = api.requests_to("PATCH", "/api/v1/namespaces/shop/pods/mesh-1")
    assert patches[0].content_type == "application/strategic-merge-patch+json"
    assert "resourceVersion" in patches[0].body["metadata"]
    driver.inject(target, FAILURE, "run-1", 0)  # the same fault again changes nothing
    assert len(api.requests_to("PATCH")) == 1

    driver.recover(target, FAILURE, "run-1")
    after = api.pod("shop", "mesh-1")
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
    driver.recover(target, FAILURE, "run-1")  # twice is fine
    driver.recover(target, FAILURE, "never-injected")
    assert api.pod("shop", "mesh-1")["spec"] == before["spec"]


def test_pod_failure_with_container_names_keeps_the_others(driver: KubernetesDriver, api: KubeAPI) -> None:
    target = target_of(driver, "shop", "mesh-1")
    only_proxy = fault("PodChaos", {"action": "pod-failure", "containerNames": ["proxy"]})
    driver.inject(target, only_proxy, "run-1", 0)
    assert images(api, "shop", "mesh-1") == {"app": "shop/mesh:2.0", "proxy": PAUSE_IMAGE}
    driver.recover(target, only_proxy, "run-1")
    assert images(api, "shop", "mesh-1") == {"app": "shop/mesh:2.0", "proxy": "envoyproxy/envoy:v1.30"}
    assert annotation(api, "shop", "mesh-1") is None


def test_two_failures_on_one_pod_do_not_clobber_each_other(driver: KubernetesDriver, api: KubeAPI) -> None:
    target = target_of(driver, "shop", "mesh-1")
    only_app = fault("PodChaos", {"action": "pod-failure", "containerNames": ["app"]})
    driver.inject(target, only_app, "a", 0)
    driver.inject(target, FAILURE, "b", 0)
    assert annotation(api, "shop", "mesh-1") == {
        "a": {"app": "shop/mesh:2.0"},
        "b": {"app": "shop/mesh:2.0", "proxy": "envoyproxy/envoy:v1.30"},  # the true original, not the pause image
    }
    driver.recover(target, only_app, "a")
    assert images(api, "shop", "mesh-1") == {"app": PAUSE_IMAGE, "proxy": PAUSE_IMAGE}  # b still holds both
    driver.recover(target, FAILURE, "b")
    assert images(api, "shop", "mesh-1") == {"app": "shop/mesh:2.0", "proxy": "envoyproxy/envoy:v1.30"}
    assert annotation(api, "shop", "mesh-1") is None


def test_pod_failure_recovery_of_a_deleted_pod_is_done(driver: KubernetesDriver, api: KubeAPI) -> None:
    target = target_of(driver, "shop", "cart-1")
    driver.inject(target, FAILURE, "run-1", 0)
    api.remove_pod("shop", "cart-1")
    driver.recover(target, FAILURE, "run-1")
    # The pod vanishing between the read and the patch is also recovered.
    target2 = target_of(driver, "shop", "cart-2")
    driver.inject(target2, FAILURE, "run-2", 0)
    api.fail(404, 'pods "cart-2" not found', method="PATCH")
    driver.recover(target2, FAILURE, "run-2")


def test_pod_failure_redoes_a_step_after_a_conflict(driver: KubernetesDriver, api: KubeAPI) -> None:
    target = target_of(driver, "shop", "cart-1")
    api.fail(409, "the object has been modified", method="PATCH")
    driver.inject(target, FAILURE, "run-1", 0)
    assert images(api, "shop", "cart-1") == {"app": PAUSE_IMAGE}
    assert len(api.requests_to("PATCH")) == 2
    driver.recover(target, FAILURE, "run-1")
    assert images(api, "shop", "cart-1") == {"app": "nginx:1.25"}


# -- through the node agent ----------------------------------------------------------------------------------


def test_container_kill_goes_to_the_agent_on_the_pods_node(
    driver: KubernetesDriver, api: KubeAPI, agents: AgentCalls
) -> None:
    target = target_of(driver, "shop", "mesh-1")
    kill = fault("PodChaos", {"action": "container-kill", "containerNames": ["proxy"]})
    driver.inject(target, kill, "run-1", 1234.5)
    (call,) = agents.injected
    proxy_id = target.data["containers"]["proxy"].removeprefix("cri-o://")
    assert call["agent"] == "agent-node-2"
    assert (call["kind"], call["action"], call["params"]) == ("PodChaos", "container-kill",
                                                              {"containerNames": ["proxy"]})
    assert call["target"] == AgentTarget(kind="container", container_id=proxy_id, runtime="cri-o")
    assert call["fault_id"] == agent_fault_id("run-1", proxy_id) and call["expires_at"] == 1234.5
    assert len(proxy_id) == 64 and "://" not in call["target"].container_id
    driver.recover(target, kill, "run-1")  # one-shot
    assert agents.recovered == [] and api.deleted == []


def test_network_delay_goes_to_the_agent_and_recovers_there(driver: KubernetesDriver, agents: AgentCalls) -> None:
    target = target_of(driver, "other", "cart-9")
    delay = fault("NetworkChaos", {"action": "delay", "delay": {"latency": "100ms"}})
    assert "applied" in driver.inject(target, delay, "run-7", 99.0)
    (call,) = agents.injected
    cid = target.data["containers"]["app"].removeprefix("docker://")
    assert call["agent"] == "agent-node-1"
    assert (call["kind"], call["action"], call["params"]) == ("NetworkChaos", "delay", {"delay": {"latency": "100ms"}})
    assert call["target"] == AgentTarget(kind="container", container_id=cid, runtime="docker")
    driver.recover(target, delay, "run-7")
    driver.recover(target, delay, "run-7")  # the agent treats an unknown fault as recovered
    assert agents.recovered == [{"agent": "agent-node-1", "fault_id": call["fault_id"]}] * 2


def test_an_in_pod_fault_uses_the_first_container_unless_containers_are_named(
    driver: KubernetesDriver, agents: AgentCalls
) -> None:
    target = target_of(driver, "shop", "mesh-1")
    driver.inject(target, fault("StressChaos", {"stressors": {"cpu": {"workers": 1}}}), "s1", 0)
    driver.inject(target, fault("TimeChaos", {"timeOffset": "-1h", "containerNames": ["app", "proxy"]}), "t1", 0)
    runtime_ids = {n: v.removeprefix("cri-o://") for n, v in target.data["containers"].items()}
    assert [c["target"].container_id for c in agents.injected] == [runtime_ids["app"], runtime_ids["app"],
                                                                    runtime_ids["proxy"]]
    assert len({c["fault_id"] for c in agents.injected}) == 3


def test_agent_refusals_timeouts_and_missing_agents(driver: KubernetesDriver, agents: AgentCalls) -> None:
    target = target_of(driver, "shop", "cart-1")
    delay = fault("NetworkChaos", {"action": "delay", "delay": {"latency": "10ms"}})
    agents.refuse = "netem is not available on this kernel"
    with pytest.raises(PermanentError, match="netem is not available"):
        driver.inject(target, delay, "r", 0)
    agents.refuse, agents.timeout = "", True
    with pytest.raises(TransientError, match="did not answer"):
        driver.inject(target, delay, "r", 0)
    lonely = KubernetesDriver(driver.connection, agent_for_node=lambda node: None)
    with pytest.raises(PermanentError, match="no node agent runs on node node-1"):
        lonely.inject(target, delay, "r", 0)
    pending = target_of(driver, "shop", "cart-new")
    with pytest.raises(PermanentError, match="not scheduled"):
        driver.inject(pending, delay, "r", 0)
    driver.recover(pending, delay, "r")  # never scheduled: nothing to recover
    lonely.close()


def test_a_fault_that_is_not_a_pod_fault_is_refused(driver: KubernetesDriver) -> None:
    target = target_of(driver, "shop", "cart-1")
    ec2 = fault("AWSChaos", {"action": "ec2-stop", "awsRegion": "us-east-1", "ec2Instance": "i-0123456789abcdef0"})
    with pytest.raises(PermanentError, match="does not select pods"):
        driver.candidates({}, "shop", ec2)
    with pytest.raises(PermanentError, match="not a pod fault"):
        driver.inject(target, ec2, "x", 0)


# -- errors --------------------------------------------------------------------------------------------------


def test_a_server_error_is_transient_and_a_refusal_permanent(driver: KubernetesDriver, api: KubeAPI) -> None:
    api.fail(500, "etcdserver: request timed out", method="GET", path="/api/v1/namespaces/shop/pods")
    with pytest.raises(TransientError, match="500.*etcdserver"):
        driver.candidates({}, "shop", POD_KILL)
    target = target_of(driver, "shop", "cart-1")
    api.fail(403, 'pods "cart-1" is forbidden: User "chaosplane" cannot delete resource "pods"', method="DELETE")
    with pytest.raises(PermanentError, match='403.*cannot delete resource "pods"'):
        driver.inject(target, POD_KILL, "f", 0)
    assert api.pod("shop", "cart-1") is not None
    api.fail(503, "unavailable", method="GET", path="/api/v1/namespaces/shop/pods/cart-1")
    with pytest.raises(TransientError):
        driver.recover(target, FAILURE, "f")


def test_a_wrong_token_is_refused(api: KubeAPI) -> None:
    with KubernetesDriver(KubeConnection(api.url, "not-the-token")) as wrong, pytest.raises(
        PermanentError, match="authentication failed"
    ):
        wrong.candidates({}, "shop", POD_KILL)
    assert api.requests[-1].path == "/api/v1/namespaces/shop/pods"


def test_an_unreachable_or_slow_api_server_is_transient(api: KubeAPI) -> None:
    with KubernetesDriver(KubeConnection(api.url, TOKEN, timeout=0.3)) as slow:
        api.fail(None, method="GET", delay=1.0)
        with pytest.raises(TransientError, match="did not answer in time"):
            slow.candidates({}, "shop", POD_KILL)
        api.stop()
        with pytest.raises(TransientError, match="could not be reached"):
            slow.candidates({}, "shop", POD_KILL)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # verify=False, on purpose
def test_tls_with_the_clusters_ca_certificate(tmp_path: Any) -> None:
    from injector.management.commands.devcerts import write_dev_certs

    certs = write_dev_certs(tmp_path)
    with KubeAPI(token=TOKEN, tls=(str(certs.server_cert), str(certs.server_key))) as secure:
        secure.add_pod("shop", "cart-1")
        assert secure.url.startswith("https://")
        trusted = KubeConnection(secure.url, TOKEN, ca_cert_pem=certs.ca.read_text())
        with KubernetesDriver(trusted) as d:
            assert keys(d.candidates({}, "shop", POD_KILL)) == ["pod/shop/cart-1"]
            ca_file = d._ca_file
        assert ca_file is not None and not os.path.exists(ca_file)  # removed at close
        with KubernetesDriver(KubeConnection(secure.url, TOKEN)) as untrusted, pytest.raises(
            PermanentError, match="TLS"
        ):
            untrusted.candidates({}, "shop", POD_KILL)
        with KubernetesDriver(KubeConnection(secure.url, TOKEN, verify=False)) as unverified:
            assert keys(unverified.candidates({}, "shop", POD_KILL)) == ["pod/shop/cart-1"]


def test_the_emulator_lists_across_namespaces_with_selectors(api: KubeAPI) -> None:
    from kubernetes import client

    config = client.Configuration(host=api.url, api_key={"BearerToken": TOKEN},
                                  api_key_prefix={"BearerToken": "Bearer"})
    with client.ApiClient(config) as c:
        core = client.CoreV1Api(c)
        pods = core.list_pod_for_all_namespaces(label_selector="app=cart,tier", field_selector="spec.nodeName!=node-2")
        found = [(p.metadata.namespace, p.metadata.name) for p in pods.items]
        assert found == [("other", "cart-9"), ("shop", "cart-1")]
        assert pods.items[1].metadata.owner_references[0].kind == "ReplicaSet"
        assert [n.metadata.name for n in core.list_namespace(label_selector="team=payments").items] == ["shop"]
        assert core.read_namespace("shop").metadata.labels["team"] == "payments"
        with pytest.raises(client.ApiException) as refused:
            core.patch_namespaced_pod("cart-1", "shop", {"spec": {"containers": [{"name": "extra", "image": "x"}]}})
        assert refused.value.status == 422
