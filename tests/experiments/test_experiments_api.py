"""Experiments over the API: the catalogue, CRUD checked by the catalogue with errors at the request's
field, Chaos Mesh manifests in (all or none) and out, permissions and audit."""
from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments.models import Experiment, Schedule, StatusCheck, Workflow
from injector import manifests
from tenants.models import AuditEntry

T = "/api/v1/tenants/acme"
DELAY = {
    "name": "web-delay",
    "description": "Slow the web tier",
    "labels": {"team": "web"},
    "kind": "NetworkChaos",
    "action": "delay",
    "params": {"delay": {"latency": "100ms", "jitter": "10ms"}, "direction": "to"},
    "selector": {"namespaces": ["web"], "labelSelectors": {"app": "web"}},
    "mode": "fixed-percent",
    "value": "50",
    "duration": "5m",
}
MANIFEST = """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: kill-one, namespace: shop, labels: {team: shop}}
spec:
  action: pod-kill
  mode: one
  selector: {labelSelectors: {app: cart}}
---
apiVersion: chaos-mesh.org/v1alpha1
kind: Schedule
metadata: {name: nightly-loss}
spec:
  schedule: "0 2 * * *"
  type: NetworkChaos
  historyLimit: 3
  networkChaos:
    action: loss
    mode: all
    selector: {namespaces: [shop]}
    loss: {loss: "10"}
    duration: 10m
---
apiVersion: chaos-mesh.org/v1alpha1
kind: Workflow
metadata: {name: game-day}
spec:
  entry: main
  templates:
    - {name: main, templateType: Serial, children: [kill, pause]}
    - name: kill
      templateType: PodChaos
      deadline: 1m
      podChaos: {action: pod-kill, mode: one, selector: {namespaces: [shop]}}
    - {name: pause, templateType: Suspend, deadline: 30s}
---
apiVersion: chaos-mesh.org/v1alpha1
kind: StatusCheck
metadata: {name: shop-up}
spec:
  type: HTTP
  http: {url: "http://shop.example/health", criteria: {statusCode: "200"}}
"""


def post_yaml(client: Any, path: str, text: str) -> Any:
    return client.post(path, data=text.encode(), content_type="application/yaml")


def test_the_catalogue_lists_every_kind_with_valid_json_schemas(world: Any, api: Any) -> None:
    assert api(None).get("/api/v1/catalog/").status_code == 401
    body = api(world.viewer).get("/api/v1/catalog/").json()
    kinds = {k["kind"]: k for k in body["kinds"]}
    assert "NetworkChaos" in kinds and "PodChaos" in kinds
    for kind in body["kinds"]:
        for action in kind["actions"]:
            jsonschema.Draft202012Validator.check_schema(action["parameters"])
            assert action["label"] and action["help"] and action["targets"]
    delay = next(a for a in kinds["NetworkChaos"]["actions"] if a["name"] == "delay")
    latency = delay["parameters"]["properties"]["delay"]["properties"]["latency"]
    assert latency["format"] == "duration" and latency["title"] == "Latency"
    validator = jsonschema.Draft202012Validator(delay["parameters"])
    assert list(validator.iter_errors({"delay": {"latency": "100ms"}})) == []
    assert list(validator.iter_errors({"delay": {"latency": "soon"}}))


def test_an_operator_creates_an_experiment_and_it_is_audited(world: Any, api: Any) -> None:
    response = api(world.operator).post(f"{T}/experiments/", DELAY, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["action"], body["mode"], body["value"], body["duration"]) == (
        "NetworkChaos", "delay", "fixed-percent", 50, "5m0s"
    )
    assert body["params"]["delay"] == {"latency": "100ms", "jitter": "10ms"}
    assert body["targets"] == ["pod"] and body["capability"] == "netem" and body["one_shot"] is False
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.object_id, entry.actor_kind) == ("experiment.create", body["id"], "token")


@pytest.mark.parametrize(
    "change,field",
    [
        ({"params": {"delay": {"latency": "abc"}}}, "params.delay.latency"),
        ({"params": {"delay": {"latency": "1s"}, "bogus": 1}}, "params.bogus"),
        ({"action": "teleport"}, "action"),
        ({"kind": "FooChaos"}, "kind"),
        ({"mode": "some"}, "mode"),
        ({"value": "150"}, "value"),
        ({"duration": "later"}, "duration"),
        ({"selector": {"namespaces": ["Bad_NS"]}}, "selector.namespaces[0]"),
        ({"name": "x" * 254}, "name"),
    ],
)
def test_bad_experiments_are_refused_at_the_field(world: Any, api: Any, change: dict, field: str) -> None:
    before = (Experiment.objects.count(), AuditEntry.objects.count())
    response = api(world.operator).post(f"{T}/experiments/", DELAY | change, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert (Experiment.objects.count(), AuditEntry.objects.count()) == before


@pytest.mark.parametrize(
    "actor,create,read,delete",
    [("owner", 201, 200, 204), ("operator", 201, 200, 204), ("viewer", 403, 200, 403), ("outsider", 404, 404, 404)],
)
def test_who_may_do_what_with_experiments(world: Any, api: Any, actor: str, create: int, read: int, delete: int):
    existing = api(world.owner).post(f"{T}/experiments/", DELAY | {"name": "existing"}, format="json").json()["id"]
    client = api(world.member(actor))
    assert client.post(f"{T}/experiments/", DELAY, format="json").status_code == create
    assert client.get(f"{T}/experiments/{existing}/").status_code == read
    assert client.get(f"{T}/experiments/{existing}/manifest/").status_code == read
    assert client.patch(f"{T}/experiments/{existing}/", {"duration": "1m"}, format="json").status_code == (
        200 if delete == 204 else delete
    )
    assert client.delete(f"{T}/experiments/{existing}/").status_code == delete
    assert api(None).get(f"{T}/experiments/").status_code == 401


def test_update_checks_the_merged_definition(world: Any, api: Any) -> None:
    created = api(world.operator).post(f"{T}/experiments/", DELAY, format="json").json()
    url = f"{T}/experiments/{created['id']}/"
    assert api(world.operator).patch(url, {"duration": "1m"}, format="json").json()["duration"] == "1m0s"
    refused = api(world.operator).patch(url, {"params": {"delay": {}}}, format="json")
    assert refused.status_code == 400 and "params.delay.latency" in refused.json()
    kinds = api(world.operator).patch(url, {"kind": "PodChaos", "action": "pod-kill", "mode": "one", "value": ""},
                                      format="json")
    assert kinds.status_code == 200, kinds.content
    assert kinds.json()["params"] == {} and kinds.json()["kind"] == "PodChaos"


def test_list_filters_by_kind_label_and_text(world: Any, api: Any) -> None:
    client = api(world.operator)
    client.post(f"{T}/experiments/", DELAY, format="json")
    client.post(f"{T}/experiments/", DELAY | {"name": "db-delay", "labels": {"team": "db"}, "description": "x"},
                format="json")
    client.post(f"{T}/experiments/", {"name": "kill", "kind": "PodChaos", "action": "pod-kill", "mode": "one",
                                      "selector": {}}, format="json")

    def names(**query: str) -> list[str]:
        return sorted(e["name"] for e in client.get(f"{T}/experiments/", query).json()["results"])

    assert names(kind="NetworkChaos") == ["db-delay", "web-delay"]
    assert names(label="team=db") == ["db-delay"]
    assert names(label="team") == ["db-delay", "web-delay"]
    assert names(q="web tier") == ["web-delay"]
    assert names() == ["db-delay", "kill", "web-delay"]


def test_the_experiment_list_answers_in_a_constant_number_of_queries(world: Any, api: Any) -> None:
    client = api(world.operator, "session")
    client.post(f"{T}/experiments/", DELAY, format="json")
    client.get(f"{T}/experiments/")

    def count() -> int:
        with CaptureQueriesContext(connection) as context:
            assert client.get(f"{T}/experiments/").status_code == 200
        return len(context.captured_queries)

    few = count()
    for i in range(10):
        client.post(f"{T}/experiments/", DELAY | {"name": f"e{i}"}, format="json")
    assert count() == few


def test_the_manifest_of_an_experiment_imports_to_the_same_definition(world: Any, api: Any) -> None:
    created = api(world.operator).post(f"{T}/experiments/", DELAY, format="json").json()
    response = api(world.viewer).get(f"{T}/experiments/{created['id']}/manifest/")
    assert response["Content-Type"].startswith("application/yaml")
    text = response.content.decode()
    document = yaml.safe_load(text)
    assert document["kind"] == "NetworkChaos" and document["spec"]["delay"]["latency"] == "100ms"
    assert document["metadata"]["annotations"]["chaosplane.io/description"] == "Slow the web tier"

    imported = post_yaml(api(world.outsider), "/api/v1/tenants/globex/manifests/", text)
    assert imported.status_code == 201, imported.content
    copy = api(world.outsider).get(f"/api/v1/tenants/globex/experiments/{imported.json()['created'][0]['id']}/")
    original = api(world.viewer).get(f"{T}/experiments/{created['id']}/").json()
    keys = ("name", "description", "labels", "kind", "action", "params", "selector", "mode", "value", "duration")
    assert {k: copy.json()[k] for k in keys} == {k: original[k] for k in keys}
    (definition,) = manifests.parse(text)
    assert manifests.parse(manifests.dump([definition])) == [definition]


def test_importing_a_manifest_creates_everything_it_holds(world: Any, api: Any) -> None:
    response = post_yaml(api(world.operator), f"{T}/manifests/", MANIFEST)
    assert response.status_code == 201, response.content
    created = response.json()["created"]
    assert [(c["document"], c["type"], c["name"]) for c in created] == [
        (1, "experiment", "kill-one"), (2, "schedule", "nightly-loss"), (3, "workflow", "game-day"),
        (4, "statuscheck", "shop-up"),
    ]
    schedule = Schedule.objects.get(name="nightly-loss")
    assert (schedule.cron, schedule.history_limit, schedule.experiment.kind) == ("0 2 * * *", 3, "NetworkChaos")
    assert Workflow.objects.get(name="game-day").spec["entry"] == "main"
    assert StatusCheck.objects.get(name="shop-up").spec["http"]["url"] == "http://shop.example/health"
    assert Experiment.objects.get(name="kill-one").namespace == "shop"
    actions = list(AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").values_list("action", flat=True)[:5])
    assert sorted(actions) == sorted(
        ["experiment.create", "experiment.create", "schedule.create", "workflow.create", "statuscheck.create"]
    )


def test_one_bad_document_creates_nothing_and_every_error_is_named(world: Any, api: Any) -> None:
    bad = MANIFEST.replace("loss: {loss: \"10\"}", "loss: {loss: \"ten\"}").replace("deadline: 30s", "deadline: soon")
    before = (Experiment.objects.count(), Schedule.objects.count(), Workflow.objects.count(),
              AuditEntry.objects.count())

    response = post_yaml(api(world.operator), f"{T}/manifests/", bad)

    assert response.status_code == 400
    errors = {(e["document"], e["path"]) for e in response.json()["errors"]}
    assert errors == {(2, "spec.networkChaos.loss.loss"), (3, "spec.templates[2].deadline")}
    assert (Experiment.objects.count(), Schedule.objects.count(), Workflow.objects.count(),
            AuditEntry.objects.count()) == before


def test_validate_says_what_it_would_create_and_changes_nothing(world: Any, api: Any) -> None:
    before = (Experiment.objects.count(), AuditEntry.objects.count())
    response = post_yaml(api(world.viewer), f"{T}/manifests/validate/", MANIFEST)
    assert response.status_code == 200
    assert response.json()["valid"] is True
    assert [i["name"] for i in response.json()["would_create"]] == ["kill-one", "nightly-loss", "game-day", "shop-up"]
    invalid = post_yaml(api(world.viewer), f"{T}/manifests/validate/", "apiVersion: v1\nkind: Pod\n")
    assert invalid.json() == {"valid": False, "errors": [
        {"document": 1, "path": "apiVersion", "message": '"v1" is not chaos-mesh.org/v1alpha1'}
    ]}
    assert (Experiment.objects.count(), AuditEntry.objects.count()) == before


def test_names_already_taken_are_errors_of_their_document(world: Any, api: Any) -> None:
    post_yaml(api(world.operator), f"{T}/manifests/", MANIFEST)
    again = post_yaml(api(world.operator), f"{T}/manifests/", MANIFEST)
    assert again.status_code == 400
    assert {(e["document"], e["path"]) for e in again.json()["errors"]} == {
        (1, "metadata.name"), (2, "metadata.name"), (3, "metadata.name"), (4, "metadata.name")
    }


def test_kinds_that_are_not_chaos_meshs_are_refused_by_name(world: Any, api: Any) -> None:
    text = "apiVersion: chaos-mesh.org/v1alpha1\nkind: RollingRestartChaos\nmetadata: {name: x}\nspec: {}\n"
    response = post_yaml(api(world.operator), f"{T}/manifests/", text)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["path"] == "kind" and "RollingRestartChaos" in error["message"]


def test_a_physical_machine_is_skipped_with_the_reason(world: Any, api: Any) -> None:
    text = "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachine\nmetadata: {name: h1}\n" \
           "spec: {address: 'http://10.0.0.5:31768'}\n"
    response = post_yaml(api(world.operator), f"{T}/manifests/", text)
    assert response.status_code == 201
    (item,) = response.json()["created"]
    assert item["action"] == "skip" and "dial out" in item["reason"]


def test_manifests_must_be_yaml(world: Any, api: Any) -> None:
    assert api(world.operator).post(f"{T}/manifests/", {"a": 1}, format="json").status_code == 415
    broken = post_yaml(api(world.operator), f"{T}/manifests/", "kind: [unclosed\n")
    assert broken.status_code == 400 and "not valid YAML at line" in broken.json()["errors"][0]["message"]


def test_a_viewer_cannot_import_and_an_outsider_cannot_see(world: Any, api: Any) -> None:
    assert post_yaml(api(world.viewer), f"{T}/manifests/", MANIFEST).status_code == 403
    assert post_yaml(api(world.outsider), f"{T}/manifests/", MANIFEST).status_code == 404
    assert post_yaml(api(world.outsider), f"{T}/manifests/validate/", MANIFEST).status_code == 404
    assert Experiment.objects.count() == 0


def test_an_experiment_a_schedule_runs_cannot_be_deleted(world: Any, api: Any) -> None:
    post_yaml(api(world.operator), f"{T}/manifests/", MANIFEST)
    experiment = Experiment.objects.get(name="nightly-loss")
    response = api(world.operator).delete(f"{T}/experiments/{experiment.uuid}/")
    assert response.status_code == 400 and "nightly-loss" in response.json()["name"][0]


def test_a_kind_without_an_action_field_exports_and_runs_its_definition(world: Any, api: Any) -> None:
    body = {"name": "burn", "kind": "StressChaos", "namespace": "shop", "mode": "one", "duration": "30s",
            "selector": {"namespaces": ["shop"]}, "params": {"stressors": {"cpu": {"workers": 1, "load": 20}}}}
    created = api(world.operator).post(f"{T}/experiments/", body, format="json")
    assert created.status_code == 201, created.json()
    manifest = api(world.operator).get(f"{T}/experiments/{created.json()['id']}/manifest/")
    assert manifest.status_code == 200 and "action:" not in manifest.content.decode()
