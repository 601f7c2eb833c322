"""Schedules, workflows and workflow runs over HTTP: who may do what (owner, operator, viewer, outsider,
anonymous), what a response shows (the coming ticks in the schedule's time zone, a workflow run's tree,
events and probes), that every write is audited, and that bad input names its field and changes
nothing. Workflow runs are dry runs on a hosts environment; what a worker would do next (advance the
engine, inject a run, probe a check, fire a tick) is called directly: no worker consumes the tasks."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experiments import checking, runs, scheduling, services, workflows
from experiments.models import CheckRun, Run, Schedule, Workflow, WorkflowNode, WorkflowRun
from injector import manifests
from tenants.models import AuditEntry, Policy

from .checkserver import check_server, http_check
from .runs_harness import SYSTEM, host_experiment, hosts_environment

pytestmark = pytest.mark.django_db
T = "/api/v1/tenants/acme"
NIGHTLY = {"name": "nightly", "cron": "0 2 * * *", "experiment": "cpu", "environment": "lab"}


def stress(name: str, deadline: str = "1m") -> dict[str, Any]:
    return {
        "name": name, "templateType": "PhysicalMachineChaos", "deadline": deadline,
        "physicalmachineChaos": {"action": "stress-cpu", "mode": "all", "selector": {}, "duration": "30s",
                                 "stress-cpu": {"load": 10, "workers": 1}},
    }


FLOW = {"entry": "main", "templates": [
    {"name": "main", "templateType": "Serial", "children": ["burn", "pause"]},
    stress("burn"),
    {"name": "pause", "templateType": "Suspend", "deadline": "30s"},
]}


@pytest.fixture
def lab(world: Any) -> Any:
    """The hosts environment `lab`, the experiment `cpu`, the workflow `flow`."""
    env = hosts_environment(world.acme, agents=2)
    host_experiment(world.acme, "cpu", duration="30s")
    services.save_workflow(SYSTEM, world.acme, {"name": "flow", "spec": FLOW, "description": "burn, then wait"})
    return env


def flow(world: Any) -> Workflow:
    return Workflow.objects.get(tenant=world.acme, name="flow")


def dry_run(world: Any) -> WorkflowRun:
    return workflows.start_workflow(SYSTEM, flow(world), "lab", dry_run=True)


def audits(world: Any) -> list[tuple[str, str, str]]:
    return list(AuditEntry.objects.filter(tenant=world.acme).order_by("seq")
                .values_list("action", "object_id", "actor_kind"))


def state(schedule: Schedule) -> tuple[Any, ...]:
    row = Schedule.objects.get(pk=schedule.pk)
    return (row.name, row.cron, row.time_zone, row.experiment_id, row.workflow_id, row.environment_id, row.dry_run,
            row.concurrency_policy, row.history_limit, row.starting_deadline_seconds, row.paused, row.next_fire_at,
            row.labels, row.description)


def times(body: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(t) for t in body["next_fire_times"]]


# Who may do what -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "write", "read", "change", "delete"),
    [
        ("owner", 201, 200, 200, 204),
        ("operator", 201, 200, 200, 204),
        ("viewer", 403, 200, 403, 403),
        ("outsider", 404, 404, 404, 404),
    ],
)
def test_who_may_do_what_with_schedules(
    world: Any, api: Any, lab: Any, who: str, write: int, read: int, change: int, delete: int
) -> None:
    existing = services.save_schedule(SYSTEM, world.acme, NIGHTLY)
    url = f"{T}/schedules/{existing.uuid}/"
    client = api(world.member(who))
    before = state(existing)

    assert client.post(f"{T}/schedules/", NIGHTLY | {"name": "mine"}, format="json").status_code == write
    assert client.get(f"{T}/schedules/").status_code == read
    assert client.get(url).status_code == read
    assert client.patch(url, {"cron": "0 3 * * *"}, format="json").status_code == change
    assert client.put(url, NIGHTLY | {"cron": "0 4 * * *"}, format="json").status_code == change
    assert client.post(f"{url}pause/").status_code == change
    assert client.post(f"{url}resume/").status_code == change
    if change != 200:
        assert state(existing) == before
    assert client.delete(url).status_code == delete
    assert Schedule.objects.filter(pk=existing.pk).exists() == (delete != 204)
    # Another tenant's schedule is not found through the outsider's own tenant either.
    assert api(world.outsider).get(f"/api/v1/tenants/globex/schedules/{existing.uuid}/").status_code == 404


@pytest.mark.parametrize(
    ("who", "write", "read", "change", "delete"),
    [
        ("owner", 201, 200, 200, 204),
        ("operator", 201, 200, 200, 204),
        ("viewer", 403, 200, 403, 403),
        ("outsider", 404, 404, 404, 404),
    ],
)
def test_who_may_do_what_with_workflows(
    world: Any, api: Any, lab: Any, who: str, write: int, read: int, change: int, delete: int
) -> None:
    url = f"{T}/workflows/{flow(world).uuid}/"
    client = api(world.member(who))

    assert client.post(f"{T}/workflows/", {"name": "mine", "spec": FLOW}, format="json").status_code == write
    assert client.get(f"{T}/workflows/").status_code == read
    assert client.get(url).status_code == read
    assert client.get(f"{url}manifest/").status_code == read
    assert client.patch(url, {"description": "new"}, format="json").status_code == change
    assert client.put(url, {"name": "flow", "spec": FLOW}, format="json").status_code == change
    started = client.post(f"{url}runs/", {"environment": "lab", "dry_run": True}, format="json")
    assert started.status_code == (201 if change == 200 else change)
    assert WorkflowRun.objects.count() == (1 if change == 200 else 0)
    assert client.delete(url).status_code == delete
    assert Workflow.objects.filter(name="flow").exists() == (delete != 204)


@pytest.mark.parametrize(
    ("who", "read", "change"),
    [("owner", 200, 200), ("operator", 200, 200), ("viewer", 200, 403), ("outsider", 404, 404)],
)
def test_who_may_do_what_with_workflow_runs(world: Any, api: Any, lab: Any, who: str, read: int, change: int) -> None:
    wr = dry_run(world)
    client = api(world.member(who))
    assert client.get(f"{T}/workflow-runs/").status_code == read
    assert client.get(f"{T}/workflow-runs/{wr.uuid}/").status_code == read
    assert client.post(f"{T}/workflow-runs/{wr.uuid}/abort/").status_code == change
    wr.refresh_from_db()
    assert wr.phase == (WorkflowRun.Phase.ABORTED if change == 200 else WorkflowRun.Phase.RUNNING)
    assert api(world.outsider).get(f"/api/v1/tenants/globex/workflow-runs/{wr.uuid}/").status_code == 404


def test_anonymous_requests_are_401_everywhere(world: Any, api: Any, lab: Any) -> None:
    schedule = services.save_schedule(SYSTEM, world.acme, NIGHTLY)
    wr = dry_run(world)
    s, w, r = f"{T}/schedules/{schedule.uuid}/", f"{T}/workflows/{flow(world).uuid}/", f"{T}/workflow-runs/{wr.uuid}/"
    anonymous = api(None)
    for method, url in [
        ("get", f"{T}/schedules/"), ("post", f"{T}/schedules/"), ("get", s), ("patch", s), ("put", s),
        ("delete", s), ("post", f"{s}pause/"), ("post", f"{s}resume/"),
        ("get", f"{T}/workflows/"), ("post", f"{T}/workflows/"), ("get", w), ("patch", w), ("put", w),
        ("delete", w), ("get", f"{w}manifest/"), ("post", f"{w}runs/"),
        ("get", f"{T}/workflow-runs/"), ("get", r), ("post", f"{r}abort/"),
    ]:
        assert getattr(anonymous, method)(url).status_code == 401, (method, url)
    assert Schedule.objects.filter(pk=schedule.pk, paused=False).exists()
    assert WorkflowRun.objects.get(pk=wr.pk).phase == WorkflowRun.Phase.RUNNING


# Schedules -------------------------------------------------------------------------------------------


def test_an_operator_creates_a_schedule_and_sees_its_coming_ticks(world: Any, api: Any, lab: Any) -> None:
    response = api(world.operator).post(f"{T}/schedules/", NIGHTLY | {"labels": {"team": "web"}}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {k: body[k] for k in ("name", "cron", "time_zone", "experiment", "workflow", "environment", "dry_run",
                                 "concurrency_policy", "history_limit", "starting_deadline_seconds", "paused",
                                 "labels", "created_by", "last_fire_at")} == {
        "name": "nightly", "cron": "0 2 * * *", "time_zone": "UTC", "experiment": "cpu", "workflow": None,
        "environment": "lab", "dry_run": None, "concurrency_policy": "Forbid", "history_limit": None,
        "starting_deadline_seconds": None, "paused": False, "labels": {"team": "web"}, "created_by": "bob",
        "last_fire_at": None,
    }
    coming = times(body)
    assert len(coming) == 5 and all(t.astimezone(UTC).time().isoformat() == "02:00:00" for t in coming)
    assert [b - a for a, b in zip(coming, coming[1:], strict=False)] == [timedelta(days=1)] * 4
    assert timezone.now() < coming[0] <= timezone.now() + timedelta(days=1)
    assert datetime.fromisoformat(body["next_fire_at"]) == coming[0]
    assert body["description_text"] and body["runs"] == [] and body["workflow_runs"] == [] and body["events"] == []
    assert audits(world)[-1] == ("schedule.create", body["id"], "token")
    listed = api(world.viewer).get(f"{T}/schedules/").json()["results"]
    assert [s["id"] for s in listed] == [body["id"]] and "next_fire_times" not in listed[0]


def test_the_coming_ticks_are_in_the_schedules_time_zone(world: Any, api: Any, lab: Any) -> None:
    body = NIGHTLY | {"name": "standup", "cron": "0 10 * * 1-5", "time_zone": "Europe/Berlin"}
    created = api(world.operator).post(f"{T}/schedules/", body, format="json").json()

    coming = times(created)
    assert len(coming) == 5 and coming == sorted(set(coming))
    berlin = ZoneInfo("Europe/Berlin")
    for tick in coming:
        local = tick.astimezone(berlin)
        assert (local.hour, local.minute, local.second, local.weekday() < 5) == (10, 0, 0, True), local
        # 10:00 in Berlin is 08:00 UTC in summer time, 09:00 UTC in winter.
        assert tick.astimezone(UTC).hour == (8 if local.utcoffset() == timedelta(hours=2) else 9)
    assert "Monday" in created["description_text"] and "Friday" in created["description_text"]

    moved = api(world.operator).patch(f"{T}/schedules/{created['id']}/", {"time_zone": "America/New_York"},
                                      format="json").json()
    new_york = ZoneInfo("America/New_York")
    assert all(t.astimezone(new_york).hour == 10 for t in times(moved))
    entry = AuditEntry.objects.filter(action="schedule.update").get()
    assert (entry.before["time_zone"], entry.after["time_zone"]) == ("Europe/Berlin", "America/New_York")


def test_pausing_empties_the_coming_ticks_and_resuming_fills_them_again(world: Any, api: Any, lab: Any) -> None:
    schedule = services.save_schedule(SYSTEM, world.acme, NIGHTLY)
    client = api(world.operator)
    url = f"{T}/schedules/{schedule.uuid}/"

    paused = client.post(f"{url}pause/").json()
    assert paused["paused"] is True and paused["next_fire_times"] == [] and paused["next_fire_at"] is None
    assert [e["reason"] for e in paused["events"]] == ["SchedulePaused"]
    assert client.post(f"{url}pause/").status_code == 200  # already paused: nothing happens
    assert api(world.viewer).get(f"{T}/schedules/?paused=true").json()["count"] == 1

    resumed = client.post(f"{url}resume/").json()
    assert resumed["paused"] is False and len(resumed["next_fire_times"]) == 5
    assert resumed["next_fire_at"] == resumed["next_fire_times"][0]
    assert [e["reason"] for e in resumed["events"]] == ["ScheduleResumed", "SchedulePaused"]
    assert [a[0] for a in audits(world)[-2:]] == ["schedule.pause", "schedule.resume"]
    assert AuditEntry.objects.filter(action="schedule.pause").count() == 1


def test_updates_and_deletes_are_audited_with_before_and_after(world: Any, api: Any, lab: Any) -> None:
    client = api(world.operator)
    created = client.post(f"{T}/schedules/", NIGHTLY | {"description": "every night", "history_limit": 3},
                          format="json").json()
    url = f"{T}/schedules/{created['id']}/"

    patched = client.patch(url, {"cron": "30 1 * * *", "concurrency_policy": "Allow"}, format="json").json()
    assert (patched["cron"], patched["concurrency_policy"], patched["history_limit"]) == ("30 1 * * *", "Allow", 3)
    assert patched["description"] == "every night"  # a PATCH changes what it names only
    entry = AuditEntry.objects.filter(action="schedule.update").get()
    assert (entry.before["cron"], entry.after["cron"]) == ("0 2 * * *", "30 1 * * *")
    assert client.patch(url, {"cron": "30 1 * * *"}, format="json").status_code == 200
    assert AuditEntry.objects.filter(action="schedule.update").count() == 1  # no change, no entry

    put = client.put(url, NIGHTLY | {"workflow": "flow", "experiment": None, "dry_run": True}, format="json").json()
    assert (put["workflow"], put["experiment"], put["dry_run"], put["cron"]) == ("flow", None, True, "0 2 * * *")
    assert (put["description"], put["history_limit"], put["concurrency_policy"]) == ("", None, "Forbid")

    assert client.delete(url).status_code == 204
    assert not Schedule.objects.filter(uuid=created["id"]).exists()
    assert [a[:2] for a in audits(world)[-3:]] == [
        ("schedule.update", created["id"]), ("schedule.update", created["id"]), ("schedule.delete", created["id"])
    ]
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": ""}, "cron"),
        ({"time_zone": "Mars/Base"}, "time_zone"),
        ({"experiment": "nope"}, "experiment"),
        ({"workflow": "flow"}, "experiment"),  # both an experiment and a workflow
        ({"experiment": None}, "experiment"),  # neither
        ({"workflow": "nope", "experiment": None}, "workflow"),
        ({"environment": "nowhere"}, "environment"),
        ({"concurrency_policy": "Replace"}, "concurrency_policy"),
        ({"history_limit": 0}, "history_limit"),
        ({"starting_deadline_seconds": -1}, "starting_deadline_seconds"),
        ({"dry_run": "maybe"}, "dry_run"),
        ({"labels": {"team": "x" * 64}}, "labels"),
        ({"paused": "soon"}, "paused"),
    ],
)
def test_bad_schedules_name_the_field_and_change_nothing(
    world: Any, api: Any, lab: Any, change: dict[str, Any], field: str
) -> None:
    existing = services.save_schedule(SYSTEM, world.acme, NIGHTLY | {"name": "existing"})
    before = (Schedule.objects.count(), len(audits(world)), state(existing))
    client = api(world.operator)

    created = client.post(f"{T}/schedules/", NIGHTLY | change, format="json")
    patched = client.patch(f"{T}/schedules/{existing.uuid}/", change, format="json")
    put = client.put(f"{T}/schedules/{existing.uuid}/", NIGHTLY | {"name": "existing"} | change, format="json")

    for response in (created, patched, put):
        assert response.status_code == 400 and field in response.json(), response.json()
    assert (Schedule.objects.count(), len(audits(world)), state(existing)) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in NIGHTLY.items() if k != "environment"}, "environment"),
        ({k: v for k, v in NIGHTLY.items() if k != "cron"}, "cron"),
        (NIGHTLY | {"name": "Nightly Run"}, "name"),
        (NIGHTLY | {"name": "taken"}, "name"),
    ],
)
def test_a_schedule_needs_a_good_free_name_a_cron_and_an_environment(
    world: Any, api: Any, lab: Any, body: dict[str, Any], field: str
) -> None:
    services.save_schedule(SYSTEM, world.acme, NIGHTLY | {"name": "taken"})
    before = (Schedule.objects.count(), len(audits(world)))
    response = api(world.operator).post(f"{T}/schedules/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert (Schedule.objects.count(), len(audits(world))) == before


def test_a_schedules_name_cannot_change(world: Any, api: Any, lab: Any) -> None:
    schedule = services.save_schedule(SYSTEM, world.acme, NIGHTLY)
    before = state(schedule)
    response = api(world.operator).patch(f"{T}/schedules/{schedule.uuid}/", {"name": "renamed", "cron": "@hourly"},
                                         format="json")
    assert response.status_code == 400 and "cannot be changed" in response.json()["name"][0]
    assert state(schedule) == before


def test_the_schedule_list_filters_and_leaves_out_the_schedules_of_workflow_nodes(
    world: Any, api: Any, lab: Any
) -> None:
    client = api(world.operator)
    client.post(f"{T}/schedules/", NIGHTLY, format="json")
    client.post(f"{T}/schedules/", NIGHTLY | {"name": "paused-one", "paused": True}, format="json")
    client.post(f"{T}/schedules/", NIGHTLY | {"name": "weekly-flow", "cron": "@weekly", "experiment": None,
                                              "workflow": "flow"}, format="json")
    wr = dry_run(world)
    node = WorkflowNode.objects.get(workflow_run=wr, name="burn")
    owned = Schedule.objects.create(tenant=world.acme, name="flow.every.1", cron="@every 10s", workflow_node=node,
                                    environment=lab)

    def names(**query: str) -> list[str]:
        response = api(world.viewer).get(f"{T}/schedules/", query)
        assert response.status_code == 200
        return [s["name"] for s in response.json()["results"]]

    assert names() == ["nightly", "paused-one", "weekly-flow"]
    assert names(paused="true") == ["paused-one"]
    assert names(paused="false") == ["nightly", "weekly-flow"]
    assert names(experiment="cpu") == ["nightly", "paused-one"]
    assert names(workflow="flow") == ["weekly-flow"]
    assert names(workflow="other") == []
    # The schedule of a workflow node can be looked at (its runs point to it), not changed here.
    assert client.get(f"{T}/schedules/{owned.uuid}/").status_code == 200
    refused = client.post(f"{T}/schedules/{owned.uuid}/pause/")
    assert refused.status_code == 400 and "schedule" in refused.json()
    assert client.delete(f"{T}/schedules/{owned.uuid}/").status_code == 400
    assert Schedule.objects.filter(pk=owned.pk, paused=False).exists()


def test_a_schedule_shows_the_runs_it_started_and_its_events(world: Any, api: Any, lab: Any) -> None:
    schedule = services.save_schedule(SYSTEM, world.acme, NIGHTLY)
    weekly = services.save_schedule(SYSTEM, world.acme, NIGHTLY | {"name": "weekly", "experiment": None,
                                                                   "workflow": "flow", "dry_run": True})
    tick = timezone.now()
    assert scheduling.fire(schedule.pk, tick) == "fired"
    assert scheduling.fire(weekly.pk, tick) == "fired"
    run = Run.objects.get(schedule=schedule)
    wr = WorkflowRun.objects.get(schedule=weekly)
    client = api(world.viewer)

    body = client.get(f"{T}/schedules/{schedule.uuid}/").json()
    assert [(r["id"], r["phase"]) for r in body["runs"]] == [(str(run.uuid), "pending")]
    assert body["workflow_runs"] == []
    fired = body["events"][0]
    assert (fired["reason"], fired["run"], fired["object_id"]) == ("ScheduleFired", str(run.uuid), str(schedule.uuid))
    flow_body = client.get(f"{T}/schedules/{weekly.uuid}/").json()
    assert [(r["id"], r["dry_run"]) for r in flow_body["workflow_runs"]] == [(str(wr.uuid), True)]
    assert flow_body["events"][0]["workflow_run"] == str(wr.uuid)

    detail = client.get(f"{T}/runs/{run.uuid}/").json()
    assert (detail["origin"], detail["schedule"], detail["workflow_run"], detail["steady_state"]) == (
        "schedule", str(schedule.uuid), None, ""
    )
    listed = client.get(f"{T}/workflow-runs/{wr.uuid}/").json()
    assert (listed["origin"], listed["schedule"]) == ("schedule", str(weekly.uuid))


def test_lists_and_details_answer_in_a_constant_number_of_queries(world: Any, api: Any, lab: Any) -> None:
    client = api(world.viewer, "session")
    first = services.save_schedule(SYSTEM, world.acme, NIGHTLY | {"concurrency_policy": "Allow"})
    dry_run(world)

    def count(path: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)

    few = count(f"{T}/schedules/")
    detail = count(f"{T}/schedules/{first.uuid}/")
    runs_list = count(f"{T}/workflow-runs/")
    for i in range(4):
        hosts_environment(world.acme, name=f"env-{i}", agents=1)
        host_experiment(world.acme, f"cpu-{i}")
        services.save_schedule(SYSTEM, world.acme, NIGHTLY | {"name": f"s-{i}", "experiment": f"cpu-{i}",
                                                              "environment": f"env-{i}"})
        services.save_schedule(SYSTEM, world.acme, NIGHTLY | {"name": f"w-{i}", "experiment": None,
                                                              "workflow": "flow", "environment": f"env-{i}"})
        assert scheduling.fire(first.pk, timezone.now()) == "fired"
        dry_run(world)
    assert len(api(world.viewer).get(f"{T}/schedules/{first.uuid}/").json()["runs"]) == 4
    assert count(f"{T}/schedules/") == few
    assert count(f"{T}/schedules/{first.uuid}/") == detail
    assert count(f"{T}/workflow-runs/") == runs_list


# Workflows -------------------------------------------------------------------------------------------


def test_an_operator_creates_a_workflow_and_its_manifest_imports_back(world: Any, api: Any) -> None:
    body = {"name": "game-day", "namespace": "shop", "labels": {"team": "shop"}, "description": "kill, wait",
            "spec": FLOW}
    response = api(world.operator).post(f"{T}/workflows/", body, format="json")

    assert response.status_code == 201, response.json()
    created = response.json()
    assert {k: created[k] for k in ("name", "namespace", "labels", "description", "created_by")} == {
        "name": "game-day", "namespace": "shop", "labels": {"team": "shop"}, "description": "kill, wait",
        "created_by": "bob",
    }
    assert created["spec"]["entry"] == "main" and [t["name"] for t in created["spec"]["templates"]] == [
        "main", "burn", "pause"
    ]
    assert audits(world)[-1] == ("workflow.create", created["id"], "token")

    manifest = api(world.viewer).get(f"{T}/workflows/{created['id']}/manifest/")
    assert manifest.status_code == 200 and manifest["Content-Type"].startswith("application/yaml")
    document = yaml.safe_load(manifest.content)
    assert (document["kind"], document["metadata"]["name"], document["metadata"]["namespace"]) == (
        "Workflow", "game-day", "shop"
    )
    assert document["metadata"]["labels"] == {"team": "shop"}
    assert document["metadata"]["annotations"]["chaosplane.io/description"] == "kill, wait"
    (definition,) = manifests.parse(manifest.content.decode())
    assert definition.spec() == created["spec"]

    imported = api(world.outsider).post("/api/v1/tenants/globex/manifests/", data=manifest.content,
                                        content_type="application/yaml")
    assert imported.status_code == 201, imported.json()
    copy = api(world.outsider).get(f"/api/v1/tenants/globex/workflows/{imported.json()['created'][0]['id']}/").json()
    assert {k: copy[k] for k in ("name", "namespace", "labels", "description", "spec")} == {
        k: created[k] for k in ("name", "namespace", "labels", "description", "spec")
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"spec": {"entry": "main", "templates": [{"name": "main", "templateType": "Suspend", "deadline": "soon"}]}},
         "spec.templates[0].deadline"),
        ({"spec": {"entry": "nowhere", "templates": FLOW["templates"]}}, "spec.entry"),
        ({"spec": {"entry": "main", "templates": [FLOW["templates"][0], stress("burn") | {"deadline": "-1s"},
                                                  FLOW["templates"][2]]}}, "spec.templates[1].deadline"),
        ({"spec": "main"}, "spec"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"labels": {"team": ["web"]}}, "labels"),
    ],
)
def test_bad_workflows_name_the_field_and_change_nothing(
    world: Any, api: Any, lab: Any, change: dict[str, Any], field: str
) -> None:
    existing = flow(world)
    before = (Workflow.objects.count(), len(audits(world)), existing.spec, existing.namespace)
    client = api(world.operator)

    created = client.post(f"{T}/workflows/", {"name": "new", "spec": FLOW} | change, format="json")
    patched = client.patch(f"{T}/workflows/{existing.uuid}/", change, format="json")
    put = client.put(f"{T}/workflows/{existing.uuid}/", {"name": "flow", "spec": FLOW} | change, format="json")

    for response in (created, patched, put):
        assert response.status_code == 400 and field in response.json(), response.json()
    existing.refresh_from_db()
    assert (Workflow.objects.count(), len(audits(world)), existing.spec, existing.namespace) == before


@pytest.mark.parametrize(("name", "why"), [("Game Day", "lowercase"), ("flow", "already exists")])
def test_a_workflow_needs_a_good_free_name(world: Any, api: Any, lab: Any, name: str, why: str) -> None:
    before = (Workflow.objects.count(), len(audits(world)))
    response = api(world.operator).post(f"{T}/workflows/", {"name": name, "spec": FLOW}, format="json")
    assert response.status_code == 400 and why in response.json()["name"][0], response.json()
    assert (Workflow.objects.count(), len(audits(world))) == before


def test_workflow_updates_and_deletes_are_audited(world: Any, api: Any, lab: Any) -> None:
    client = api(world.operator)
    url = f"{T}/workflows/{flow(world).uuid}/"
    wider = {"entry": "main", "templates": [{**FLOW["templates"][0], "children": ["burn", "pause", "again"]},
                                            *FLOW["templates"][1:], stress("again")]}

    patched = client.patch(url, {"spec": wider}, format="json").json()
    assert patched["spec"]["templates"][0]["children"] == ["burn", "pause", "again"]
    assert patched["description"] == "burn, then wait"
    put = client.put(url, {"name": "flow", "spec": FLOW}, format="json").json()
    assert put["description"] == "" and len(put["spec"]["templates"]) == 3
    entries = AuditEntry.objects.filter(action="workflow.update").order_by("seq")
    assert [len(e.after["spec"]["templates"]) for e in entries] == [4, 3]

    services.save_schedule(SYSTEM, world.acme, NIGHTLY | {"experiment": None, "workflow": "flow"})
    refused = client.delete(url)
    assert refused.status_code == 400 and "nightly" in refused.json()["name"][0]
    Schedule.objects.filter(name="nightly").delete()
    assert client.delete(url).status_code == 204
    assert audits(world)[-1][:2] == ("workflow.delete", str(put["id"]))
    assert client.patch(url, {"name": "renamed"}, format="json").status_code == 404


# Workflow runs ---------------------------------------------------------------------------------------


def test_a_workflow_run_shows_its_tree_its_runs_and_its_events(world: Any, api: Any, lab: Any) -> None:
    client = api(world.operator)
    started = client.post(f"{T}/workflows/{flow(world).uuid}/runs/", {"environment": "lab", "dry_run": True},
                          format="json")

    assert started.status_code == 201, started.json()
    body = started.json()
    assert (body["phase"], body["workflow_name"], body["environment"], body["dry_run"], body["origin"]) == (
        "running", "flow", "lab", True, "api"
    )
    assert [(n["path"], n["parent"], n["phase"]) for n in body["nodes"]] == [
        ("main", None, "pending"), ("main/burn", "main", "pending"), ("main/pause", "main", "pending")
    ]
    assert audits(world)[-1] == ("workflowrun.start", body["id"], "token")

    wr = WorkflowRun.objects.get(uuid=body["id"])
    workflows.advance(wr.pk)  # what the worker does with the task the start published
    run = Run.objects.get(workflow_node__workflow_run=wr)
    runs.inject(run.pk)  # a dry run ends at once
    workflows.on_run_ended(run.pk)

    detail = client.get(f"{T}/workflow-runs/{body['id']}/").json()
    nodes = {n["name"]: n for n in detail["nodes"]}
    assert (nodes["main"]["phase"], nodes["burn"]["phase"], nodes["pause"]["phase"]) == (
        "running", "succeeded", "running"
    )
    assert nodes["burn"]["runs"] == [str(run.uuid)] and nodes["pause"]["runs"] == []
    assert nodes["pause"]["deadline"] and nodes["burn"]["started_at"] and nodes["burn"]["finished_at"]
    reasons = [e["reason"] for e in detail["events"]]
    assert reasons[0] == "WorkflowStarted" and reasons.count("NodeStarted") == 3
    assert "NodeSucceeded" in reasons
    assert detail["spec"] == flow(world).spec

    run_detail = client.get(f"{T}/runs/{run.uuid}/").json()
    assert (run_detail["origin"], run_detail["workflow_run"], run_detail["schedule"]) == (
        "workflow", body["id"], None
    )
    assert [r["id"] for r in client.get(f"{T}/workflow-runs/", {"phase": "running"}).json()["results"]] == [body["id"]]
    assert client.get(f"{T}/workflow-runs/", {"workflow": "other"}).json()["results"] == []


def test_a_workflow_start_the_policy_refuses_is_a_409_and_recorded(world: Any, api: Any, lab: Any) -> None:
    Policy.objects.filter(tenant=world.acme).update(max_concurrent_runs=0)
    response = api(world.operator).post(f"{T}/workflows/{flow(world).uuid}/runs/", {"environment": "lab"},
                                        format="json")
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["phase"] == "failed" and "policy max-concurrent-runs" in body["message"]
    assert {n["phase"] for n in body["nodes"]} == {"skipped"}
    assert [e["reason"] for e in body["events"]] == ["WorkflowStarted", "PolicyRefused"]


@pytest.mark.parametrize(("body", "field"), [({}, "environment"), ({"environment": "nowhere"}, "environment"),
                                             ({"environment": "lab", "dry_run": "maybe"}, "dry_run")])
def test_bad_workflow_starts_name_the_field_and_change_nothing(
    world: Any, api: Any, lab: Any, body: dict[str, Any], field: str
) -> None:
    before = (WorkflowRun.objects.count(), len(audits(world)))
    response = api(world.operator).post(f"{T}/workflows/{flow(world).uuid}/runs/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert (WorkflowRun.objects.count(), len(audits(world))) == before


def test_aborting_a_workflow_run_ends_it_and_a_second_abort_is_refused(world: Any, api: Any, lab: Any) -> None:
    wr = dry_run(world)
    workflows.advance(wr.pk)
    client = api(world.operator)

    aborted = client.post(f"{T}/workflow-runs/{wr.uuid}/abort/")

    assert aborted.status_code == 200, aborted.json()
    body = aborted.json()
    assert body["phase"] == "aborted" and body["message"].startswith("aborted by token:") and "(bob)" in body["message"]
    nodes = {n["name"]: n["phase"] for n in body["nodes"]}
    assert nodes == {"main": "aborted", "burn": "aborted", "pause": "skipped"}
    assert body["events"][-1]["reason"] == "WorkflowAborted"
    assert audits(world)[-1][:2] == ("workflowrun.abort", str(wr.uuid))
    assert Run.objects.get(workflow_node__workflow_run=wr).phase in (Run.Phase.RECOVERING, Run.Phase.FINISHED)

    again = client.post(f"{T}/workflow-runs/{wr.uuid}/abort/")
    assert again.status_code == 400 and "aborted" in again.json()["phase"][0]
    assert AuditEntry.objects.filter(action="workflowrun.abort").count() == 1


def test_status_check_probes_show_on_their_node_and_on_their_run(world: Any, api: Any, lab: Any) -> None:
    client = api(world.operator)
    with check_server() as server:
        spec = {"entry": "main", "templates": [
            {"name": "main", "templateType": "Parallel", "children": ["burn", "health"]}, stress("burn"),
            {"name": "health", "templateType": "StatusCheck", "deadline": "1m", "abortWithStatusCheck": True,
             "statusCheck": http_check(server.url, mode="Continuous", duration="1m")},
        ]}
        created = client.post(f"{T}/workflows/", {"name": "guarded", "spec": spec}, format="json").json()
        body = client.post(f"{T}/workflows/{created['id']}/runs/", {"environment": "lab", "dry_run": True},
                           format="json").json()
        wr = WorkflowRun.objects.get(uuid=body["id"])
        workflows.advance(wr.pk)
        check = CheckRun.objects.get(workflow_node__workflow_run=wr)
        checking.probe_once(check.pk)
        server.status = 503
        checking.probe_once(check.pk)  # one failure fails it, and it aborts the workflow

        experiment = services.create_experiment(SYSTEM, world.acme, {
            "name": "guarded-cpu", "kind": "PhysicalMachineChaos", "action": "stress-cpu", "mode": "all",
            "selector": {}, "duration": "30s", "params": {"stress-cpu": {"load": 10, "workers": 1}},
            "status_checks": [{"name": "up", "spec": http_check(server.url), "abort": True}],
        })
        run = runs.start_run(SYSTEM, experiment, "lab", dry_run=False)
        server.status = 200
        assert checking.before(run) is None

    detail = client.get(f"{T}/workflow-runs/{wr.uuid}/").json()
    assert detail["phase"] == "aborted"
    health = next(n for n in detail["nodes"] if n["name"] == "health")
    (shown,) = health["checks"]
    assert (shown["name"], shown["purpose"], shown["abort"], shown["phase"], shown["probes"]) == (
        "guarded/health", "node", True, "failed", 2
    )
    assert [r["ok"] for r in shown["results"]] == [True, False]
    assert all(r["latency_ms"] >= 0 and r["at"] for r in shown["results"])
    assert "503" in shown["results"][1]["detail"]
    assert next(n for n in detail["nodes"] if n["name"] == "burn")["checks"] == []

    run_detail = client.get(f"{T}/runs/{run.uuid}/").json()
    (before,) = run_detail["checks"]
    assert (before["name"], before["purpose"], before["phase"]) == ("up", "before", "succeeded")
    assert [r["ok"] for r in before["results"]] == [True]
    assert run_detail["origin"] == "api" and run_detail["steady_state"] == ""


def test_the_workflow_run_detail_answers_in_a_constant_number_of_queries(world: Any, api: Any, lab: Any) -> None:
    client = api(world.viewer, "session")
    small = dry_run(world)
    wide = {"entry": "main", "templates": [
        {"name": "main", "templateType": "Parallel", "children": [f"burn-{i}" for i in range(6)]},
        *[stress(f"burn-{i}") for i in range(6)],
    ]}
    big = workflows.start_workflow(SYSTEM, services.save_workflow(SYSTEM, world.acme, {"name": "wide", "spec": wide}),
                                   "lab", dry_run=True)
    for wr in (small, big):
        workflows.advance(wr.pk)

    def count(wr: WorkflowRun) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"{T}/workflow-runs/{wr.uuid}/").status_code == 200
        return len(queries)

    assert count(big) == count(small)
