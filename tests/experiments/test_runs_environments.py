"""Runs on Kubernetes and cloud environments, through the lifecycle (experiments.runs) with the
environment's stored, encrypted credentials:

- Kubernetes: the official `kubernetes` client over real HTTP to tests/fakes/kubeapi.py, a local
  emulator of the API server (no cluster can run here); in-pod faults go to the node's agent, here
  simulated behind the real Redis relay (devtools.simagents).
- AWS: boto3 over real HTTP to moto in server mode.

Every policy rule that needs a namespace is shown here refusing with its name, kube-system first.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.utils import timezone

from experiments import runs
from experiments import services as experiment_services
from experiments.models import Injection, Run
from injector import services
from injector.models import Agent, Environment
from tenants.models import Policy
from tests.fakes.kubeapi import KubeAPI
from tests.fakes.moto_server import moto_server

from .runs_harness import SYSTEM, simulated

pytestmark = pytest.mark.django_db
TOKEN = "kube-token-for-tests"


@pytest.fixture
def kube() -> Iterator[KubeAPI]:
    with KubeAPI(token=TOKEN) as api:
        api.add_node("node-1")
        api.add_pod("shop", "cart-1", labels={"app": "cart"}, annotations={"chaos-mesh.org/inject": "enabled"})
        api.add_pod("shop", "cart-2", labels={"app": "cart"})
        api.add_pod("kube-system", "coredns-1", labels={"app": "cart"})
        yield api


@pytest.fixture
def cluster(world: Any, kube: KubeAPI, settings: Any) -> Environment:
    settings.AGENT_COMMAND_TIMEOUT = 1.0
    env, _ = services.create_environment(
        SYSTEM, world.acme, "cluster", "kubernetes",
        config={"api_url": kube.url, "scope": "cluster"}, secrets={"token": TOKEN},
    )
    now = timezone.now()
    Agent.objects.create(tenant=world.acme, environment=env, name="node-1", connected=True, connected_at=now,
                         last_heartbeat=now)
    return env


def pod_experiment(world: Any, name: str, action: str = "pod-failure", **selector: Any) -> Any:
    return experiment_services.create_experiment(SYSTEM, world.acme, {
        "name": name, "kind": "PodChaos", "action": action, "namespace": "shop", "mode": "all", "duration": "60s",
        "selector": selector or {"namespaces": ["shop"], "labelSelectors": {"app": "cart"}},
    })


def images(kube: KubeAPI, name: str) -> list[str]:
    return [c["image"] for c in kube.pod("shop", name)["spec"]["containers"]]


def test_pod_failure_swaps_images_and_a_stop_restores_them(world: Any, kube: KubeAPI, cluster: Environment) -> None:
    run = runs.start_run(SYSTEM, pod_experiment(world, "fail"), "cluster")
    runs.inject(run.pk)
    assert Run.objects.get(pk=run.pk).phase == Run.Phase.RUNNING
    assert images(kube, "cart-1") == images(kube, "cart-2") == ["registry.k8s.io/pause:3.9"]
    assert kube.pod("kube-system", "coredns-1")["spec"]["containers"][0]["image"] == "nginx:1.25"

    runs.stop(SYSTEM, Run.objects.get(pk=run.pk))
    runs.recover(run.pk)
    assert images(kube, "cart-1") == images(kube, "cart-2") == ["nginx:1.25"]
    assert Run.objects.get(pk=run.pk).phase == Run.Phase.FINISHED


def test_pod_kill_is_one_shot_and_finishes_at_once(world: Any, kube: KubeAPI, cluster: Environment) -> None:
    run = runs.start_run(SYSTEM, pod_experiment(world, "kill", "pod-kill"), "cluster")
    runs.inject(run.pk)
    run = Run.objects.get(pk=run.pk)
    assert run.phase == Run.Phase.FINISHED and run.one_shot
    assert sorted(d["name"] for d in kube.deleted) == ["cart-1", "cart-2"]


def test_an_in_pod_fault_goes_to_the_agent_on_the_pods_node(
    world: Any, kube: KubeAPI, cluster: Environment, settings: Any
) -> None:
    experiment = experiment_services.create_experiment(SYSTEM, world.acme, {
        "name": "cpu", "kind": "StressChaos", "namespace": "shop", "mode": "one", "duration": "60s",
        "selector": {"namespaces": ["shop"], "labelSelectors": {"app": "cart"}},
        "params": {"stressors": {"cpu": {"workers": 1, "load": 20}}},
    })
    with simulated(cluster, settings.REDIS_URL) as sim:
        run = runs.start_run(SYSTEM, experiment, "cluster")
        runs.inject(run.pk)
        (command,) = [c for c in sim.commands if c["op"] == "inject"]
        assert command["args"]["target"]["kind"] == "container" and command["args"]["target"]["runtime"] == "containerd"
        assert command["args"]["kind"] == "StressChaos"
        runs.stop(SYSTEM, Run.objects.get(pk=run.pk))
        runs.recover(run.pk)
        assert sim.all_held() == {}
    assert Run.objects.get(pk=run.pk).injections.get().state == Injection.State.RECOVERED


def test_kube_system_is_protected_by_default(world: Any, kube: KubeAPI, cluster: Environment) -> None:
    named = runs.start_run(SYSTEM, pod_experiment(world, "dns", namespaces=["kube-system"]), "cluster")
    assert named.phase == Run.Phase.REFUSED and "policy protected-namespace:" in named.message

    everywhere = pod_experiment(world, "all-cart", namespaces=["shop", "kube-system"], labelSelectors={"app": "cart"})
    Run.objects.all().delete()
    Policy.objects.filter(tenant=world.acme).update(protected_namespaces=["kube-system"])
    run = runs.start_run(SYSTEM, everywhere, "cluster")
    assert run.phase == Run.Phase.REFUSED  # the selector names it outright
    assert kube.pod("kube-system", "coredns-1")["spec"]["containers"][0]["image"] == "nginx:1.25"


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        ({"namespace_allowlist": ["payments"]}, "namespace-allowlist"),
        ({"require_opt_in_annotation": True}, "opt-in-annotation"),
    ],
)
def test_namespace_rules_refuse_the_selected_pods_by_name(
    world: Any, kube: KubeAPI, cluster: Environment, policy: dict, rule: str
) -> None:
    Policy.objects.filter(tenant=world.acme).update(**policy)
    run = runs.start_run(SYSTEM, pod_experiment(world, "fail"), "cluster")
    runs.inject(run.pk)
    run = Run.objects.get(pk=run.pk)
    assert run.phase == Run.Phase.REFUSED and f"policy {rule}:" in run.message, run.message
    assert images(kube, "cart-1") == ["nginx:1.25"] and not run.injections.exists()


def test_the_opt_in_annotation_lets_annotated_pods_be_chosen(world: Any, kube: KubeAPI, cluster: Environment) -> None:
    from tenants.models import OPT_IN_ANNOTATION

    kube.add_pod("shop", "cart-3", labels={"app": "web"}, annotations={OPT_IN_ANNOTATION: "true"})
    Policy.objects.filter(tenant=world.acme).update(require_opt_in_annotation=True)
    run = runs.start_run(SYSTEM, pod_experiment(world, "web", namespaces=["shop"], labelSelectors={"app": "web"}),
                         "cluster")
    runs.inject(run.pk)
    assert Run.objects.get(pk=run.pk).phase == Run.Phase.RUNNING
    runs.stop(SYSTEM, Run.objects.get(pk=run.pk))
    runs.recover(run.pk)


def test_the_wrong_token_fails_the_run_with_the_api_servers_word(world: Any, kube: KubeAPI, cluster: Environment):
    services.update_environment(SYSTEM, cluster, secrets={"token": "wrong-token"})
    run = runs.start_run(SYSTEM, pod_experiment(world, "fail"), "cluster")
    runs.inject(run.pk)
    run = Run.objects.get(pk=run.pk)
    assert run.phase == Run.Phase.FAILED and "401" in run.message or "nauthorized" in run.message, run.message


# AWS ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def test_an_ec2_stop_run_stops_the_instance_and_recovery_starts_it(world: Any, moto_url: str, settings: Any) -> None:
    settings.CLOUD_POLL_SECONDS = 0.05
    keys = {"access_key_id": "AKIATESTING", "secret_access_key": "moto-does-not-check-this"}
    services.create_environment(SYSTEM, world.acme, "aws", "aws",
                                config={"region": "us-east-1", "endpoint_url": moto_url}, secrets=keys)
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_url, aws_access_key_id="AKIATESTING",
                       aws_secret_access_key="moto-does-not-check-this")
    ami = ec2.describe_images(Owners=["amazon"], MaxResults=1)["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

    def state() -> str:
        return ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]

    experiment = experiment_services.create_experiment(SYSTEM, world.acme, {
        "name": "stop-web", "kind": "AWSChaos", "action": "ec2-stop", "duration": "60s",
        "params": {"secretName": "aws", "awsRegion": "us-east-1", "ec2Instance": instance},
    })
    run = runs.start_run(SYSTEM, experiment, "aws")
    runs.inject(run.pk)
    assert Run.objects.get(pk=run.pk).phase == Run.Phase.RUNNING and state() == "stopped"
    runs.stop(SYSTEM, Run.objects.get(pk=run.pk))
    runs.recover(run.pk)
    assert state() == "running" and Run.objects.get(pk=run.pk).phase == Run.Phase.FINISHED
