"""The runs, archives, halt and environments endpoints over HTTP: who may do what (owner, operator,
viewer, outsider, anonymous), what a response shows, and that secrets never come back. The lifecycle
steps run directly (experiments.runs), against simulated agents behind the real Redis relay."""
from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import runs
from experiments.models import Experiment, Run
from injector.models import Environment
from tenants.models import AuditEntry, Policy

from .runs_harness import SYSTEM, host_experiment, hosts_environment, simulated

pytestmark = pytest.mark.django_db
T = "/api/v1/tenants/acme"
ROLES = ("owner", "operator", "viewer", "outsider")


@pytest.fixture
def redis_url(settings: Any) -> str:
    settings.AGENT_COMMAND_TIMEOUT = 1.0
    return settings.REDIS_URL


def running(world: Any, name: str = "cpu") -> Run:
    run = runs.start_run(SYSTEM, Experiment.objects.get(tenant=world.acme, name=name), "lab")
    runs.inject(run.pk)
    return Run.objects.get(pk=run.pk)


@pytest.mark.parametrize(
    ("who", "start", "read", "command", "halt"),
    [
        ("owner", 201, 200, 200, 200),
        ("operator", 201, 200, 200, 200),
        ("viewer", 403, 200, 403, 403),
        ("outsider", 404, 404, 404, 404),
    ],
)
def test_who_may_do_what_with_runs(
    world: Any, api: Any, redis_url: str, who: str, start: int, read: int, command: int, halt: int
) -> None:
    env = hosts_environment(world.acme, agents=1)
    experiment = host_experiment(world.acme)
    client = api(world.member(who))
    with simulated(env, redis_url):
        response = client.post(f"{T}/experiments/{experiment.uuid}/runs/", {"environment": "lab"}, format="json")
        assert response.status_code == start, response.content
        run = running(world)
        assert client.get(f"{T}/runs/").status_code == read
        assert client.get(f"{T}/runs/{run.uuid}/").status_code == read
        assert client.post(f"{T}/runs/{run.uuid}/pause/").status_code == command
        assert client.post(f"{T}/runs/{run.uuid}/stop/").status_code == command
        assert client.post(f"{T}/halt/").status_code == halt
        runs.halt(SYSTEM, world.acme)
        assert client.get(f"{T}/archives/").status_code == read
        assert client.get(f"{T}/archives/{run.uuid}/").status_code == read
    anonymous = api(None)
    for url in (f"{T}/runs/", f"{T}/archives/", f"{T}/runs/{run.uuid}/"):
        assert anonymous.get(url).status_code == 401
    assert anonymous.post(f"{T}/halt/").status_code == 401
    assert anonymous.post(f"{T}/experiments/{experiment.uuid}/runs/", {"environment": "lab"}).status_code == 401


def test_a_run_shows_its_injections_and_events_and_ends_in_the_archive(world: Any, api: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=2)
    experiment = host_experiment(world.acme)
    client = api(world.operator)
    with simulated(env, redis_url):
        created = client.post(f"{T}/experiments/{experiment.uuid}/runs/", {"environment": "lab"}, format="json")
        assert created.status_code == 201
        body = created.json()
        assert body["phase"] == "pending" and body["environment"] == "lab"
        assert body["experiment"] == str(experiment.uuid)
        runs.inject(Run.objects.get(uuid=body["id"]).pk)

        detail = client.get(f"{T}/runs/{body['id']}/").json()
        assert detail["phase"] == "running" and len(detail["injections"]) == 2
        assert {i["state"] for i in detail["injections"]} == {"injected"}
        assert [e["reason"] for e in detail["events"]] == ["Started", "Selected", "Injected", "Running"]
        assert client.get(f"{T}/archives/").json()["results"] == []

        stopped = client.post(f"{T}/runs/{body['id']}/stop/").json()
        assert stopped["phase"] == "recovering"
        runs.recover(Run.objects.get(uuid=body["id"]).pk)
    archived = client.get(f"{T}/archives/{body['id']}/").json()
    assert archived["phase"] == "finished" and archived["archived"]
    assert archived["spec"]["spec"]["action"] == "stress-cpu"
    assert all(i["recovered_at"] for i in archived["injections"])
    assert client.post(f"{T}/runs/{body['id']}/stop/").status_code == 400  # read-only now
    assert [r["id"] for r in client.get(f"{T}/runs/?phase=finished").json()["results"]] == [body["id"]]


def test_a_policy_refusal_is_a_409_naming_the_rule(world: Any, api: Any) -> None:
    hosts_environment(world.acme, agents=1)
    Policy.objects.filter(tenant=world.acme).update(max_duration_seconds=10)
    experiment = host_experiment(world.acme)
    response = api(world.operator).post(f"{T}/experiments/{experiment.uuid}/runs/", {"environment": "lab"},
                                        format="json")
    assert response.status_code == 409
    assert response.json()["phase"] == "refused" and "policy max-duration:" in response.json()["message"]


def test_bad_start_requests_name_the_field_and_change_nothing(world: Any, api: Any) -> None:
    hosts_environment(world.acme, agents=1)
    experiment = host_experiment(world.acme)
    url = f"{T}/experiments/{experiment.uuid}/runs/"
    before = (Run.objects.count(), AuditEntry.objects.count())
    for body, field in (({}, "environment"), ({"environment": "nowhere"}, "environment"),
                        ({"environment": "lab", "dry_run": "maybe"}, "dry_run")):
        response = api(world.operator).post(url, body, format="json")
        assert response.status_code == 400 and field in response.json(), response.json()
    assert (Run.objects.count(), AuditEntry.objects.count()) == before


def test_the_run_list_answers_in_a_constant_number_of_queries(world: Any, api: Any) -> None:
    hosts_environment(world.acme, agents=1)
    client = api(world.viewer)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"{T}/runs/").status_code == 200
        return len(queries)

    runs.start_run(SYSTEM, host_experiment(world.acme, "one"), "lab")
    count()  # the token's first use of the minute writes last_used_at
    few = count()
    for i in range(5):
        runs.start_run(SYSTEM, host_experiment(world.acme, f"more-{i}"), "lab")
    assert count() == few


def test_applying_a_manifest_with_an_environment_starts_a_run(world: Any, api: Any) -> None:
    hosts_environment(world.acme, agents=1)
    manifest = """
apiVersion: chaos-mesh.org/v1alpha1
kind: PhysicalMachineChaos
metadata: {name: cpu-burn}
spec:
  action: stress-cpu
  mode: all
  selector: {}
  stress-cpu: {load: 20, workers: 1}
  duration: 30s
"""
    client = api(world.operator)
    first = client.post(f"{T}/manifests/?environment=lab&dry_run=true", manifest, content_type="application/yaml")
    assert first.status_code == 201, first.json()
    item = first.json()["created"][0]
    assert item["action"] == "create" and item["phase"] == "pending"
    assert Run.objects.get(uuid=item["run"]).dry_run

    again = client.post(f"{T}/manifests/?environment=lab", manifest.replace("load: 20", "load: 30"),
                        content_type="application/yaml")
    assert again.status_code == 201
    item = again.json()["created"][0]
    assert item["action"] == "update" and not Run.objects.get(uuid=item["run"]).dry_run
    assert Experiment.objects.get(tenant=world.acme, name="cpu-burn").params["stress-cpu"]["load"] == 30
    assert Run.objects.filter(experiment__name="cpu-burn").count() == 2

    before = Run.objects.count()
    refused = client.post(f"{T}/manifests/?environment=nowhere", manifest, content_type="application/yaml")
    assert refused.status_code == 400 and "environment" in refused.json()
    assert Run.objects.count() == before


def test_deleting_an_experiment_over_the_api_stops_its_run(world: Any, api: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=1)
    host_experiment(world.acme)
    with simulated(env, redis_url) as sim:
        run = running(world)
        assert api(world.operator).delete(f"{T}/experiments/{run.experiment.uuid}/").status_code == 204
        runs.recover(run.pk)
        assert sim.all_held() == {}
    archived = api(world.viewer).get(f"{T}/archives/{run.uuid}/").json()
    assert archived["experiment"] is None and archived["experiment_name"] == "cpu"


# Environments ---------------------------------------------------------------------------------------


AWS = {
    "name": "cloud", "kind": "aws", "config": {"region": "eu-west-1"},
    "secrets": {"access_key_id": "AKIAEXAMPLEKEY000001", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE"},
}


@pytest.mark.parametrize(("who", "write", "read"),
                         [("owner", 201, 200), ("operator", 403, 200), ("viewer", 403, 200), ("outsider", 404, 404)])
def test_who_may_do_what_with_environments(world: Any, api: Any, who: str, write: int, read: int) -> None:
    hosts_environment(world.acme, agents=1)
    client = api(world.member(who))
    assert client.post(f"{T}/environments/", AWS, format="json").status_code == write
    assert client.get(f"{T}/environments/").status_code == read
    assert client.get(f"{T}/environments/lab/").status_code == read
    assert client.get(f"{T}/environments/lab/agents/").status_code == read
    owner_only = 200 if write == 201 else write
    assert client.patch(f"{T}/environments/lab/", {"requires_grant": True}, format="json").status_code == owner_only
    assert client.post(f"{T}/environments/lab/token/").status_code == owner_only
    grant = 204 if write == 201 else write
    assert client.post(f"{T}/environments/lab/grants/", {"username": "bob"}, format="json").status_code == grant
    assert client.delete(f"{T}/environments/lab/grants/", {"username": "bob"}, format="json").status_code == grant
    assert client.delete(f"{T}/environments/lab/").status_code == (204 if write == 201 else write)
    assert api(None).get(f"{T}/environments/").status_code == 401


def test_secrets_are_encrypted_and_never_shown_again(world: Any, api: Any) -> None:
    response = api(world.owner).post(f"{T}/environments/", AWS, format="json")
    assert response.status_code == 201
    body = response.json()
    secret = AWS["secrets"]["secret_access_key"]
    assert body["secrets_set"] and body["config"] == {"region": "eu-west-1"} and "secrets" not in body
    env = Environment.objects.get(tenant=world.acme, name="cloud")
    assert secret not in env.secrets_encrypted and AWS["secrets"]["access_key_id"] not in env.secrets_encrypted
    assert secret not in api(world.owner).get(f"{T}/environments/cloud/").content.decode()
    audit_text = " ".join(str(e.after) + str(e.before) for e in AuditEntry.objects.filter(tenant=world.acme))
    assert secret not in audit_text
    from injector import secrets

    assert secrets.decrypt(env.secrets_encrypted)["secret_access_key"] == secret


def test_bad_credentials_name_the_field_and_change_nothing(world: Any, api: Any) -> None:
    before = (Environment.objects.count(), AuditEntry.objects.count())
    bad = AWS | {"config": {"region": "Mars"}}
    response = api(world.owner).post(f"{T}/environments/", bad, format="json")
    assert response.status_code == 400 and "settings.region" in response.json(), response.json()
    assert AWS["secrets"]["secret_access_key"] not in response.content.decode()
    assert (Environment.objects.count(), AuditEntry.objects.count()) == before


def test_a_kubernetes_environment_gives_its_cluster_manifest(world: Any, api: Any) -> None:
    import yaml

    body = {"name": "prod", "kind": "kubernetes",
            "config": {"api_url": "https://k8s.example:6443", "scope": "namespace", "namespaces": ["shop"]}}
    created = api(world.owner).post(f"{T}/environments/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["registration_token"].startswith("cpr_")
    placeholder = api(world.viewer).get(f"{T}/environments/prod/manifest/")
    assert placeholder.status_code == 200 and "cpr_" not in placeholder.content.decode()
    issued = api(world.owner).post(f"{T}/environments/prod/manifest/")
    assert issued.status_code == 200
    documents = list(yaml.safe_load_all(issued.content))
    kinds = {d["kind"] for d in documents}
    assert {"ServiceAccount", "Role", "RoleBinding", "DaemonSet"} <= kinds and "ClusterRole" not in kinds
    assert "cpr_" in issued.content.decode()
    assert api(world.operator).post(f"{T}/environments/prod/manifest/").status_code == 403
